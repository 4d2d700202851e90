"""The deploy CodePipeline: stage order, what each CodeBuild action runs and installs, and its roles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.constructs.deploy_pipeline import DEPLOY_COMMAND, RENDER_COMMAND, SMOKE_TEST_COMMAND
from model_deploy.aws.names import endpoint_role_name, endpoint_stack_name
from model_deploy.stage_config import STAGES
from tests.infra.conftest import REPO_ROOT, SynthesizedApp, render

ORDER = [
    "Source",
    "Render",
    "DeployStaging",
    "SmokeTestStaging",
    "ApproveProd",
    "DeployProd",
    "SmokeTestProd",
]


def _pipeline(app: SynthesizedApp) -> dict[str, Any]:
    (pipeline,) = app.template("deploy").find_resources("AWS::CodePipeline::Pipeline").values()
    return pipeline["Properties"]


def _action(app: SynthesizedApp, stage_name: str) -> dict[str, Any]:
    (stage,) = [s for s in _pipeline(app)["Stages"] if s["Name"] == stage_name]
    (action,) = stage["Actions"]
    return action


def _project(app: SynthesizedApp, action: dict[str, Any]) -> dict[str, Any]:
    logical_id = action["Configuration"]["ProjectName"]["Ref"]
    return app.templates[app.stacks.deploy.stack_name]["Resources"][logical_id]["Properties"]


def _statements_of_role(app: SynthesizedApp, role_logical_id: str) -> list[dict[str, Any]]:
    resources = app.templates[app.stacks.deploy.stack_name]["Resources"]
    return [
        statement
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_logical_id} in r["Properties"]["Roles"]
        for statement in render(r["Properties"]["PolicyDocument"]["Statement"])
    ]


def _role_assumed_by(app: SynthesizedApp, service: str) -> list[str]:
    resources = app.templates[app.stacks.deploy.stack_name]["Resources"]
    return [
        logical_id
        for logical_id, r in resources.items()
        if r["Type"] == "AWS::IAM::Role"
        and r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"].get("Service") == service
    ]


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}


def test_staging_then_smoke_test_then_the_gate_then_production(any_app: SynthesizedApp) -> None:
    pipeline = _pipeline(any_app)
    assert [stage["Name"] for stage in pipeline["Stages"]] == ORDER
    assert pipeline["ExecutionMode"] == "SUPERSEDED"
    assert _action(any_app, "ApproveProd")["ActionTypeId"]["Category"] == "Approval"
    for name in ORDER[1:]:
        if name != "ApproveProd":
            assert _action(any_app, name)["ActionTypeId"]["Provider"] == "CodeBuild", name


def test_render_gets_its_execution_id_and_exports_the_version_for_the_gate(
    default_app: SynthesizedApp,
) -> None:
    action = _action(default_app, "Render")
    assert action["Namespace"] == "Release"
    assert action["OutputArtifacts"] == [{"Name": "Rendered"}]
    variables = json.loads(action["Configuration"]["EnvironmentVariables"])
    assert variables == [
        {"name": "PIPELINE_EXECUTION_ID", "type": "PLAINTEXT", "value": "#{codepipeline.PipelineExecutionId}"}
    ]
    spec = json.loads(_project(default_app, action)["Source"]["BuildSpec"])
    assert spec["phases"]["build"]["commands"][0] == RENDER_COMMAND
    assert spec["phases"]["install"]["commands"] == [
        "pip install --no-cache-dir -r model_deploy/requirements-render.txt"
    ]
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.11", "nodejs": "20"}
    assert spec["env"]["exported-variables"] == ["MODEL_PACKAGE_ARN", "MODEL_PACKAGE_VERSION"]
    assert spec["artifacts"] == {"base-directory": "rendered", "files": ["**/*"]}
    gate = _action(default_app, "ApproveProd")["Configuration"]["CustomData"]
    assert "#{Release.MODEL_PACKAGE_ARN}" in gate and default_app.config.production_endpoint_name in gate
    environment = {
        v["Name"]: render(v["Value"])
        for v in _project(default_app, action)["Environment"]["EnvironmentVariables"]
    }
    assert (
        environment["DATA_BUCKET"]
        == f"{default_app.config.data_bucket_prefix}-${{AWS::AccountId}}-${{AWS::Region}}"
    )
    assert "KMS_KEY_ARN" in environment
    # The build project's spelling: one `export ARTIFACT_BUCKET=...` serves `pipelines` and `model_deploy`.
    assert (
        environment["ARTIFACT_BUCKET"]
        == f"{default_app.config.artifacts_bucket_prefix}-${{AWS::AccountId}}-${{AWS::Region}}"
    )
    assert "ARTIFACTS_BUCKET" not in environment


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_is_deployed_then_smoke_tested_from_the_rendered_release(
    default_app: SynthesizedApp, stage: str
) -> None:
    title = stage.title()
    deploy, smoke = _action(default_app, f"Deploy{title}"), _action(default_app, f"SmokeTest{title}")
    for action in (deploy, smoke):
        assert action["InputArtifacts"] == [{"Name": "Source"}, {"Name": "Rendered"}]
        spec = json.loads(_project(default_app, action)["Source"]["BuildSpec"])
        assert spec["phases"]["install"]["commands"] == [
            "pip install --no-cache-dir -r model_deploy/requirements.txt"
        ]
        assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.11"}
    assert json.loads(deploy["Configuration"]["EnvironmentVariables"]) == [
        {"name": "STAGE", "type": "PLAINTEXT", "value": stage}
    ]
    assert json.loads(smoke["Configuration"]["EnvironmentVariables"]) == [
        {"name": "ENDPOINT_NAME", "type": "PLAINTEXT", "value": default_app.config.endpoint_name(stage)}
    ]
    assert json.loads(_project(default_app, deploy)["Source"]["BuildSpec"])["phases"]["build"][
        "commands"
    ] == [DEPLOY_COMMAND]
    assert json.loads(_project(default_app, smoke)["Source"]["BuildSpec"])["phases"]["build"]["commands"] == [
        SMOKE_TEST_COMMAND
    ]
    assert '--endpoint "$ENDPOINT_NAME"' in SMOKE_TEST_COMMAND and '--stage "$STAGE"' in DEPLOY_COMMAND


def test_the_actions_install_only_boto3_and_the_cdk_pinned_as_the_project() -> None:
    def pins(path: Path) -> dict[str, str]:
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        return dict(line.split("==") for line in lines if "==" in line)

    project = pins(REPO_ROOT / "requirements.txt")
    deploy = pins(REPO_ROOT / "model_deploy" / "requirements.txt")
    render_ = pins(REPO_ROOT / "model_deploy" / "requirements-render.txt")
    assert set(deploy) == {"boto3"}
    assert set(render_) == {"aws-cdk-lib", "constructs", "cdk-nag"}
    assert "-r requirements.txt" in (REPO_ROOT / "model_deploy" / "requirements-render.txt").read_text()
    for name, version in {**deploy, **render_}.items():
        assert project[name] == version, name


def test_cloudformation_deploys_endpoint_stacks_with_a_role_that_creates_no_iam(
    default_app: SynthesizedApp,
) -> None:
    config = default_app.config
    (role,) = _role_assumed_by(default_app, "cloudformation.amazonaws.com")
    statements = _statements_of_role(default_app, role)
    iam_actions = {a for a in _actions(statements) if a.startswith("iam:")}
    assert iam_actions == {"iam:PassRole", "iam:CreateServiceLinkedRole"}
    resources = default_app.templates[default_app.stacks.deploy.stack_name]["Resources"]
    role_names = {f"${{{i}.Arn}}": r["Properties"].get("RoleName") for i, r in resources.items()}
    model_roles, scheduler_roles = sorted(
        (s for s in statements if s["Action"] == "iam:PassRole"), key=lambda s: s["Sid"]
    )
    # the schedules of the endpoint stacks (drift monitor, human loops) run as the monitoring stack's
    # scheduler roles
    assert scheduler_roles["Sid"] == "PassSchedulerRoles"
    assert sorted(r.rsplit(":role/", 1)[1] for r in scheduler_roles["Resource"]) == [
        "review-sentiment-dev-drift-monitor-scheduler",
        "review-sentiment-dev-human-loops-scheduler",
    ]
    assert scheduler_roles["Condition"] == {
        "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
    }
    pass_role = model_roles
    assert sorted(role_names[r] for r in pass_role["Resource"]) == sorted(
        endpoint_role_name(config, stage) for stage in STAGES
    )
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    (endpoint_statement,) = [s for s in statements if "sagemaker:CreateEndpoint" in _actions([s])]
    names = sorted(r.split(":")[-1] for r in endpoint_statement["Resource"])
    assert names == sorted(
        f"{kind}/{config.endpoint_name(stage)}{suffix}"
        for stage in STAGES
        for kind, suffix in (("endpoint", ""), ("model", "-*"), ("endpoint-config", "-*"))
    )


def test_the_deploy_action_may_change_only_the_endpoint_stacks_through_that_role(
    default_app: SynthesizedApp,
) -> None:
    config = default_app.config
    action = _action(default_app, "DeployStaging")
    role = _project(default_app, action)["ServiceRole"]["Fn::GetAtt"][0]
    statements = _statements_of_role(default_app, role)
    (stacks,) = [s for s in statements if "cloudformation:ExecuteChangeSet" in _actions([s])]
    assert sorted(stacks["Resource"]) == sorted(
        f"arn:${{AWS::Partition}}:cloudformation:${{AWS::Region}}:${{AWS::AccountId}}:stack/{endpoint_stack_name(config, s)}/*"
        for s in STAGES
    )
    (pass_role,) = [s for s in statements if s["Action"] == "iam:PassRole"]
    (cfn_role,) = _role_assumed_by(default_app, "cloudformation.amazonaws.com")
    assert pass_role["Resource"] == f"${{{cfn_role}.Arn}}"
    assert not any(
        a.startswith("sagemaker:Create") or a.startswith("sagemaker:Update") for a in _actions(statements)
    )


def test_render_may_stop_only_its_own_pipeline_and_smoke_tests_only_invoke(
    default_app: SynthesizedApp,
) -> None:
    config = default_app.config
    render_role = _project(default_app, _action(default_app, "Render"))["ServiceRole"]["Fn::GetAtt"][0]
    (stop,) = [
        s
        for s in _statements_of_role(default_app, render_role)
        if s["Action"] == "codepipeline:StopPipelineExecution"
    ]
    assert stop["Resource"].endswith(f":{config.deploy_pipeline_name}")
    smoke_role = _project(default_app, _action(default_app, "SmokeTestProd"))["ServiceRole"]["Fn::GetAtt"][0]
    sagemaker = {
        a for a in _actions(_statements_of_role(default_app, smoke_role)) if a.startswith("sagemaker:")
    }
    assert sagemaker == {"sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"}


@pytest.mark.parametrize("stage", STAGES)
def test_each_models_role_reads_the_artifacts_and_writes_only_its_stages_captures(
    default_app: SynthesizedApp, stage: str
) -> None:
    config = default_app.config
    resources = default_app.templates[default_app.stacks.deploy.stack_name]["Resources"]
    (role,) = [
        logical_id
        for logical_id, r in resources.items()
        if r["Type"] == "AWS::IAM::Role"
        and r["Properties"].get("RoleName") == endpoint_role_name(config, stage)
    ]
    statements = {s["Sid"]: s for s in _statements_of_role(default_app, role)}
    assert statements["WriteCaptures"]["Action"] == "s3:PutObject"
    assert statements["WriteCaptures"]["Resource"].endswith(f"/{config.data_capture_key(stage)}/*")
    assert statements["ReadModelArtifacts"]["Action"] == "s3:GetObject"
    # the models only (trained, and packaged by the evaluation): not the splits, features and reports the
    # pipeline writes beside them
    read = statements["ReadModelArtifacts"]["Resource"]
    assert [resource.endswith(f"/{config.pipeline_artifacts_prefix}/{config.pipeline_name}/{folder}/*")
            for resource, folder in zip(read, ("models", "packages"), strict=True)] == [True, True]  # fmt: skip
    assert statements["UseProjectKey"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
