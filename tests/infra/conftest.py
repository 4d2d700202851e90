"""Synthesizes the CDK app in-process once per session, exactly as ``cdk synth`` would from ``cdk.json``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

# jsii prints a banner for Node 20 on every start; it says nothing about this project.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App
from aws_cdk.assertions import Template

from infra.app_builder import MlopsStacks, build_app, build_project_template, load_from_context
from infra.project_template_settings import ProjectTemplateSettings
from model_build.config import SAGEMAKER_PROJECT_ID_VARIABLE, ProjectConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_JSON = REPO_ROOT / "cdk.json"

# Every option away from its default: GitHub source, online store, scheduled retraining, data not retained,
# human review by a private workteam.
WORKTEAM_ARN = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/review-sentiment-reviewers"
ALL_OPTIONS_CONTEXT = {
    "codeConnectionArn": "arn:aws:codeconnections:us-east-1:123456789012:connection/6f1c3f0e-2b7a-4d7e-9d5c-1a2b3c4d5e6f",
    "repositoryOwner": "acme",
    "repositoryName": "reviews-mlops",
    "branch": "release",
    "onlineStore": True,
    "retainData": False,
    "retrainSchedule": "rate(7 days)",
    "humanReviewWorkteamArn": WORKTEAM_ARN,
    "mlflowTrackingServer": "create",
}


@dataclass
class SynthesizedApp:
    """An app, its stacks and their templates, synthesized once."""

    app: App
    config: ProjectConfig
    stacks: MlopsStacks
    templates: dict[str, dict[str, Any]]
    outdir: Path

    def template(self, name: str) -> Template:
        """``name`` is the attribute of :class:`MlopsStacks`: data, feature_store, registry, build, deploy."""
        return Template.from_json(self.templates[getattr(self.stacks, name).stack_name])

    def resources(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        """Every resource of ``cfn_type`` in every template, by ``<stack>/<logical id>``."""
        return {
            f"{stack}/{logical_id}": resource
            for stack, template in self.templates.items()
            for logical_id, resource in template["Resources"].items()
            if resource["Type"] == cfn_type
        }


def cdk_json_context() -> dict[str, Any]:
    return json.loads(CDK_JSON.read_text())["context"]


def synthesize(
    outdir: Path, extra_context: Mapping[str, Any] | None = None, *, nag: bool = True
) -> SynthesizedApp:
    """Build and synthesize the app from cdk.json's context (plus ``extra_context``), without MLOPS_* overrides
    from the developer's shell, so the names are the config defaults."""
    context = {**cdk_json_context(), **(extra_context or {})}
    with mock.patch.dict(os.environ):
        for variable in ("MLOPS_PROJECT_NAME", "MLOPS_ENVIRONMENT"):
            os.environ.pop(variable, None)
        app = App(context=context, outdir=str(outdir))
        config, settings = load_from_context(app)
        stacks = build_app(app, config, settings, nag=nag)
        assembly = app.synth()  # with nag, raises on any finding that is not acknowledged
    templates = {stack.stack_name: stack.template for stack in assembly.stacks}
    return SynthesizedApp(app, config, stacks, templates, outdir)


@pytest.fixture(scope="session")
def default_app(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    return synthesize(tmp_path_factory.mktemp("cdk-default"))


@pytest.fixture(scope="session")
def all_options_app(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    return synthesize(tmp_path_factory.mktemp("cdk-all-options"), ALL_OPTIONS_CONTEXT)


@pytest.fixture(params=["default", "all_options"], scope="session")
def any_app(request: pytest.FixtureRequest) -> Iterator[SynthesizedApp]:
    yield request.getfixturevalue(f"{request.param}_app")


STUDIO_ROLES = (
    "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-20260101T000000",
    "arn:aws:iam::123456789012:role/data-scientists",
)


@dataclass
class PublishedTemplate:
    app: App
    portfolio: dict[str, Any]
    product: dict[str, Any]
    mlops_templates: dict[str, dict[str, Any]]
    outdir: Path


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> PublishedTemplate:
    """The app as ``cdk synth -c sagemakerExecutionRoleArns=...`` builds it, with cdk-nag on every stack."""
    return publish(tmp_path_factory.mktemp("cdk-project-template"))


@pytest.fixture(scope="session")
def published_github(tmp_path_factory: pytest.TempPathFactory) -> PublishedTemplate:
    """The same with a GitHub source: every project's pipelines read through the connection."""
    github = {
        key: ALL_OPTIONS_CONTEXT[key] for key in ("codeConnectionArn", "repositoryOwner", "repositoryName")
    }
    return publish(tmp_path_factory.mktemp("cdk-project-template-github"), github)


def publish(outdir: Path, extra_context: Mapping[str, Any] | None = None) -> PublishedTemplate:
    context = {
        **cdk_json_context(),
        "sagemakerExecutionRoleArns": ",".join(STUDIO_ROLES),
        **(extra_context or {}),
    }
    with mock.patch.dict(os.environ):
        for variable in ("MLOPS_PROJECT_NAME", "MLOPS_ENVIRONMENT", SAGEMAKER_PROJECT_ID_VARIABLE):
            os.environ.pop(variable, None)
        app = App(context=context, outdir=str(outdir))
        config, settings = load_from_context(app)
        stacks = build_app(app, config, settings)
        template_settings = ProjectTemplateSettings.from_context(app.node.try_get_context)
        stack = build_project_template(app, config, settings, template_settings)
        assembly = app.synth()  # raises on any cdk-nag finding not acknowledged, the product's included
    mlops = {s.stack_name: assembly.get_stack_by_name(s.stack_name).template for s in stacks.all()}
    product_file = outdir / f"{stack.product_stack.artifact_id}.product.template.json"
    return PublishedTemplate(
        app,
        assembly.get_stack_by_name(stack.stack_name).template,
        json.loads(product_file.read_text()),
        mlops,
        outdir,
    )


def render(value: Any) -> Any:
    """A template value as readable text: ``Fn::Join`` joined, ``Ref`` as ``${Name}``, GetAtt as ``${Id.Attr}``.

    Lists and dicts are rendered element-wise, so IAM statements can be compared with plain strings.
    """
    if isinstance(value, list):
        return [render(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return f"${{{argument}}}"
            if key == "Fn::GetAtt":
                return f"${{{argument[0]}.{argument[1]}}}"
            if key == "Fn::Join":
                separator, parts = argument
                return separator.join(str(render(part)) for part in parts)
        return {key: render(item) for key, item in value.items()}
    return value
