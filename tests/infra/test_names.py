"""One config: the names in the stacks are those the SageMaker pipeline and the local mode derive."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from model_build.config import ProjectConfig, load_config
from model_build.sagemaker_pipeline import aws_settings
from model_build.step_roles import step_roles
from model_deploy.aws.names import endpoint_role_name, monitor_job_role_name, monitor_scheduler_role_name
from model_deploy.stage_config import STAGES
from tests.infra.conftest import SynthesizedApp, render, synthesize

ACCOUNT = "123456789012"  # moto's account
REGION = "eu-west-1"


def _names(app: SynthesizedApp) -> dict[str, Any]:
    """The resource names the app deploys, read from the templates."""

    def only(cfn_type: str, key: str) -> Any:
        values = [
            render(r["Properties"][key]) for r in app.resources(cfn_type).values() if key in r["Properties"]
        ]
        assert len(values) == 1, f"{cfn_type}.{key}: {values}"
        return values[0]

    return {
        "feature_group_name": only("AWS::SageMaker::FeatureGroup", "FeatureGroupName"),
        "model_package_group_name": only("AWS::SageMaker::ModelPackageGroup", "ModelPackageGroupName"),
        "glue_database_name": only("AWS::Glue::Database", "DatabaseInput")["Name"],
        "athena_workgroup_name": only("AWS::Athena::WorkGroup", "Name"),
        "role_names": sorted(
            render(r["Properties"]["RoleName"])
            for r in app.resources("AWS::IAM::Role").values()
            if "RoleName" in r["Properties"]
        ),
        "pipelines": sorted(
            render(r["Properties"]["Name"]) for r in app.resources("AWS::CodePipeline::Pipeline").values()
        ),
        "buckets": sorted(
            render(r["Properties"]["BucketName"]) for r in app.resources("AWS::S3::Bucket").values()
        ),
    }


def _expected(config: ProjectConfig) -> dict[str, Any]:
    return {
        "feature_group_name": config.feature_group_name,
        "model_package_group_name": config.model_package_group_name,
        "glue_database_name": config.glue_database_name,
        "athena_workgroup_name": config.athena_workgroup_name,
        "role_names": sorted(
            [
                config.execution_role_name,
                *(step.role_name for step in step_roles(config)),
                *(endpoint_role_name(config, stage) for stage in STAGES),
                monitor_job_role_name(config),
                monitor_scheduler_role_name(config),
            ]
        ),
        "pipelines": sorted([config.build_pipeline_name, config.deploy_pipeline_name]),
        "buckets": sorted(
            f"{prefix}-${{AWS::AccountId}}-${{AWS::Region}}"
            for prefix in (
                config.data_bucket_prefix,
                config.artifacts_bucket_prefix,
                config.cicd_bucket_prefix,
                config.access_logs_bucket_prefix,
            )
        ),
    }


def test_default_app_uses_the_default_config(default_app: SynthesizedApp) -> None:
    assert default_app.config == load_config(
        project_name=None, environment=None, region=default_app.config.region
    )
    assert _names(default_app) == _expected(default_app.config)


@pytest.fixture(scope="module")
def renamed_app(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    return synthesize(
        tmp_path_factory.mktemp("cdk-renamed"),
        {"projectName": "acme-reviews", "environment": "prod"},
        nag=False,
    )


def test_project_and_environment_from_context_rename_everything(renamed_app: SynthesizedApp) -> None:
    config = load_config(project_name="acme-reviews", environment="prod")
    assert renamed_app.config == config
    assert _names(renamed_app) == _expected(config)
    assert [stack.stack_name.split("-prod-")[0] for stack in renamed_app.stacks.all()] == ["acme-reviews"] * 6


def test_the_sagemaker_runner_derives_the_same_bucket_and_role_names(default_app: SynthesizedApp) -> None:
    """Without CodeBuild's variables the CLI derives names itself; they must be the deployed ones."""
    config = default_app.config
    with mock_aws():
        settings = aws_settings(config, boto3.Session(region_name=REGION), environ={}, require_role=False)

    def deployed(name: str) -> str:
        return name.replace("${AWS::AccountId}", ACCOUNT).replace("${AWS::Region}", REGION)

    names = _names(default_app)
    assert deployed(f"{config.data_bucket_prefix}-${{AWS::AccountId}}-${{AWS::Region}}") in map(
        deployed, names["buckets"]
    )
    assert settings.data_bucket == deployed(
        f"{config.data_bucket_prefix}-${{AWS::AccountId}}-${{AWS::Region}}"
    )
    assert settings.artifact_bucket == deployed(
        f"{config.artifacts_bucket_prefix}-${{AWS::AccountId}}-${{AWS::Region}}"
    )
    assert config.execution_role_name in names["role_names"]
    assert settings.role_arn == f"arn:aws:iam::{ACCOUNT}:role/{config.execution_role_name}"
    assert settings.step_role_arns == {
        step.step: f"arn:aws:iam::{ACCOUNT}:role/{step.role_name}" for step in step_roles(config)
    }
    assert {step.role_name for step in step_roles(config)} <= set(names["role_names"])


def test_config_tags_are_on_every_taggable_resource(any_app: SynthesizedApp) -> None:
    expected = [{"Key": key, "Value": value} for key, value in sorted(any_app.config.tags.items())]
    assert {tag["Key"] for tag in expected} == {"project", "environment"}
    tagged_types = set()
    for stack, template in any_app.templates.items():
        for logical_id, resource in template["Resources"].items():
            tags = resource.get("Properties", {}).get("Tags")
            if tags is None:
                continue
            tagged_types.add(resource["Type"])
            if isinstance(tags, dict):  # a few resource types (Glue) take a map instead of a list
                tags = [{"Key": key, "Value": value} for key, value in tags.items()]
            for tag in expected:
                assert tag in tags, f"{stack}/{logical_id} ({resource['Type']}) lacks {tag}"
    for cfn_type in (
        "AWS::KMS::Key",
        "AWS::S3::Bucket",
        "AWS::SageMaker::FeatureGroup",
        "AWS::SageMaker::ModelPackageGroup",
        "AWS::IAM::Role",
        "AWS::CodePipeline::Pipeline",
        "AWS::CodeBuild::Project",
        "AWS::Athena::WorkGroup",
    ):
        assert cfn_type in tagged_types, f"{cfn_type} is not tagged"
