"""Every name the project generates fits AWS's limits, for the longest project name and environment the settings
accept: run-time names against botocore's request shapes (``model_deploy.aws.names``), template names against
CloudFormation's resource schemas (cfn-lint, on the app synthesized with those names)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from unittest import mock

import pytest
from aws_cdk import App
from cfnlint.api import lint

from infra.app_builder import load_from_context
from infra.settings import SettingsError
from model_build.config import (
    NAME_PATTERN,
    SAGEMAKER_PROJECT_ID_VARIABLE,
    SAGEMAKER_PROJECT_NAME_MAX_LENGTH,
    ProjectConfig,
)
from model_deploy.aws.names import (
    SCHEDULER_EXECUTION_ID_LENGTH,
    check_names,
    generated_names,
    longest_sagemaker_project_id,
    monitor_job_prefix,
    name_problems,
)
from model_deploy.stage_config import load_stages
from tests.infra.conftest import PublishedTemplate, cdk_json_context, synthesize

STAGES = tuple(load_stages())


def _longest_accepted() -> tuple[str, str]:
    """The project name and environment with the most characters together that ``ProjectConfig`` accepts."""
    lengths = range(3, 33)
    accepted = []
    for project, environment in itertools.product(lengths, lengths):
        try:
            ProjectConfig(project_name="p" * project, environment="e" * environment)
        except ValueError:
            continue
        accepted.append((project + environment, project, environment))
    assert accepted, "no config accepted"
    _, project, environment = max(accepted)
    return "p" * project, "e" * environment


def test_the_longest_accepted_names_make_only_names_aws_accepts() -> None:
    project, environment = _longest_accepted()
    assert NAME_PATTERN.match(project) and NAME_PATTERN.match(environment)
    config = ProjectConfig(project_name=project, environment=environment)
    assert len(generated_names(config, STAGES)) > 20
    assert name_problems(config, STAGES) == []


def test_the_longest_accepted_names_synthesize_templates_cloudformation_accepts(tmp_path: Path) -> None:
    """cfn-lint checks each name property against its schema's maxLength and pattern."""
    project, environment = _longest_accepted()
    app = synthesize(tmp_path, {"projectName": project, "environment": environment})
    assert app.config.prefix == f"{project}-{environment}"
    for name in app.templates:
        matches = lint((app.outdir / f"{name}.template.json").read_text(), regions=[app.config.region])
        assert [m for m in matches if m.rule.id.startswith("E")] == [], name


def test_a_sagemaker_project_with_the_longest_name_gets_drift_jobs_sagemaker_accepts() -> None:
    """A 20-character project name with today's 14-character id: ``<endpoint>-monitor-<id>`` reached 65."""
    config = ProjectConfig.for_sagemaker_project("a" * SAGEMAKER_PROJECT_NAME_MAX_LENGTH, "p-abcdefghij12")
    assert name_problems(config, STAGES) == []
    job = f"{monitor_job_prefix(config.endpoint_name('staging'))}{'0' * SCHEDULER_EXECUTION_ID_LENGTH}"
    assert len(job) <= 63


def test_names_aws_would_refuse_are_refused_with_the_limit() -> None:
    config = ProjectConfig.for_sagemaker_project("a" * SAGEMAKER_PROJECT_NAME_MAX_LENGTH, "p-" + "x" * 21)
    with pytest.raises(ValueError, match=r"drift monitoring job .* has 71 characters, sagemaker CreateProcessingJob "
                       r"ProcessingJobName allows 63"):  # fmt: skip
        check_names(config, STAGES)


def test_the_app_refuses_settings_that_make_names_aws_refuses() -> None:
    with mock.patch.dict(os.environ, {SAGEMAKER_PROJECT_ID_VARIABLE: "p-" + "x" * 21}):
        app = App(context={**cdk_json_context(), "projectName": "a" * SAGEMAKER_PROJECT_NAME_MAX_LENGTH})
        with pytest.raises(SettingsError, match=r"iam CreateRole RoleName allows 64"):
            load_from_context(app)


def test_the_product_takes_only_project_ids_whose_names_aws_accepts(published: PublishedTemplate) -> None:
    longest = longest_sagemaker_project_id(STAGES)
    assert longest >= len("p-abcdefghij12"), "today's SageMaker project ids fit"
    assert published.product["Parameters"]["SageMakerProjectId"]["MaxLength"] == longest
    too_long = ProjectConfig.for_sagemaker_project(
        "a" * SAGEMAKER_PROJECT_NAME_MAX_LENGTH, "p-" + "x" * (longest - 1)
    )
    assert name_problems(too_long, STAGES) != []
