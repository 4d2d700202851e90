"""The build and deploy CI/CD: sources, the CodeBuild command and variables, schedule, approval rule."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match, Template

from infra.constructs.approval_rule import MODEL_PACKAGE_STATE_CHANGE
from infra.constructs.build_pipeline import BUILD_COMMAND, ENVIRONMENT_VARIABLE, PROJECT_NAME_VARIABLE
from model_build.sagemaker_pipeline import ARTIFACT_BUCKET_VARIABLE, DATA_BUCKET_VARIABLE, ROLE_ARN_VARIABLE
from tests.infra.conftest import ALL_OPTIONS_CONTEXT, SynthesizedApp, render


def _stage_actions(pipeline: dict, stage_name: str) -> list[dict]:
    (stage,) = [stage for stage in pipeline["Properties"]["Stages"] if stage["Name"] == stage_name]
    return stage["Actions"]


def test_build_pipeline_starts_on_pushes_to_main_from_codecommit_by_default(
    default_app: SynthesizedApp,
) -> None:
    config = default_app.config
    build = default_app.template("build")
    build.has_resource_properties("AWS::CodeCommit::Repository", {"RepositoryName": config.project_name})
    build.has_resource("AWS::CodeCommit::Repository", {"DeletionPolicy": "Retain"})
    (pipeline,) = build.find_resources("AWS::CodePipeline::Pipeline").values()
    assert pipeline["Properties"]["Name"] == config.build_pipeline_name
    (source,) = _stage_actions(pipeline, "Source")
    assert source["ActionTypeId"]["Provider"] == "CodeCommit"
    assert source["Configuration"]["BranchName"] == "main"
    assert source["Configuration"]["PollForSourceChanges"] is False
    # The push trigger: an EventBridge rule on the repository's main branch that starts this pipeline.
    build.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.codecommit"],
                "detail-type": ["CodeCommit Repository State Change"],
                "detail": {"event": ["referenceCreated", "referenceUpdated"], "referenceName": ["main"]},
                "resources": Match.any_value(),
            },
            "Targets": [Match.object_like({"Arn": Match.any_value(), "RoleArn": Match.any_value()})],
        },
    )


def test_build_pipeline_uses_github_through_the_connection(all_options_app: SynthesizedApp) -> None:
    build = all_options_app.template("build")
    build.resource_count_is("AWS::CodeCommit::Repository", 0)
    (pipeline,) = build.find_resources("AWS::CodePipeline::Pipeline").values()
    (source,) = _stage_actions(pipeline, "Source")
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"] == {
        "ConnectionArn": ALL_OPTIONS_CONTEXT["codeConnectionArn"],
        "FullRepositoryId": "acme/reviews-mlops",
        "BranchName": "release",
        "DetectChanges": True,
    }


def test_codebuild_installs_the_repo_and_runs_the_cli(default_app: SynthesizedApp) -> None:
    build = default_app.template("build")
    project = _run_pipeline_project(build)
    spec = json.loads(project["Properties"]["Source"]["BuildSpec"])
    # What building and starting the definition needs, no more (tests/infra/test_build_requirements.py).
    assert spec["phases"]["install"]["commands"] == ["pip install --no-cache-dir -r requirements-build.txt"]
    assert spec["phases"]["build"]["commands"] == [BUILD_COMMAND]
    assert BUILD_COMMAND == "python -m pipelines run --sagemaker --wait"
    assert "EncryptionKey" in project["Properties"]


def test_codebuild_passes_the_names_the_cli_reads(default_app: SynthesizedApp) -> None:
    config = default_app.config
    project = _run_pipeline_project(default_app.template("build"))
    variables = {
        v["Name"]: render(v["Value"]) for v in project["Properties"]["Environment"]["EnvironmentVariables"]
    }
    assert set(variables) == {
        PROJECT_NAME_VARIABLE,
        ENVIRONMENT_VARIABLE,
        ROLE_ARN_VARIABLE,
        ARTIFACT_BUCKET_VARIABLE,
        DATA_BUCKET_VARIABLE,
    }
    assert variables[PROJECT_NAME_VARIABLE] == config.project_name
    assert variables[ENVIRONMENT_VARIABLE] == config.environment
    assert (
        variables[ARTIFACT_BUCKET_VARIABLE]
        == f"{config.artifacts_bucket_prefix}-${{AWS::AccountId}}-${{AWS::Region}}"
    )
    assert (
        variables[DATA_BUCKET_VARIABLE] == f"{config.data_bucket_prefix}-${{AWS::AccountId}}-${{AWS::Region}}"
    )
    # The execution role's ARN, read from the registry stack's output.
    role_reference = variables[ROLE_ARN_VARIABLE]["Fn::GetStackOutput"]
    assert role_reference["StackName"] == default_app.stacks.registry.stack_name


def test_no_schedule_by_default_and_one_when_configured(
    default_app: SynthesizedApp, all_options_app: SynthesizedApp
) -> None:
    schedules = [
        r
        for r in default_app.resources("AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    assert schedules == []
    all_options_app.template("build").has_resource_properties(
        "AWS::Events::Rule",
        {"ScheduleExpression": "rate(7 days)", "State": "ENABLED", "Targets": Match.any_value()},
    )


def test_the_deploy_rule_matches_only_approvals_and_rejections_in_this_group(any_app: SynthesizedApp) -> None:
    config = any_app.config
    deploy = any_app.template("deploy")
    (rule,) = [r for r in deploy.find_resources("AWS::Events::Rule").values() if "aws.sagemaker" in str(r)]
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": [MODEL_PACKAGE_STATE_CHANGE],
        "detail": {
            "ModelPackageGroupName": [config.model_package_group_name],
            "ModelApprovalStatus": ["Approved", "Rejected"],
        },
    }
    (target,) = rule["Properties"]["Targets"]
    (pipeline_id,) = deploy.find_resources("AWS::CodePipeline::Pipeline")
    assert pipeline_id in json.dumps(target["Arn"])


def test_the_deploy_pipeline_starts_only_from_the_rule(any_app: SynthesizedApp) -> None:
    config = any_app.config
    (pipeline,) = any_app.template("deploy").find_resources("AWS::CodePipeline::Pipeline").values()
    assert pipeline["Properties"]["Name"] == config.deploy_pipeline_name
    (source,) = _stage_actions(pipeline, "Source")
    configuration = source["Configuration"]
    assert configuration.get("PollForSourceChanges", False) is False
    assert configuration.get("DetectChanges", False) is False
    codecommit_triggers = [
        rule
        for rule in any_app.template("deploy").find_resources("AWS::Events::Rule").values()
        if "aws.codecommit" in str(rule)
    ]
    assert codecommit_triggers == []
    (action,) = _stage_actions(pipeline, "Render")
    assert action["OutputArtifacts"] == [{"Name": "Rendered"}]


def _run_pipeline_project(build: Template) -> dict[str, Any]:
    """The build stack's pipeline project (a CodeCommit source adds the pull-request checks' project)."""
    (project,) = [
        resource
        for logical_id, resource in build.find_resources("AWS::CodeBuild::Project").items()
        if "RunSageMakerPipeline" in logical_id
    ]
    return project
