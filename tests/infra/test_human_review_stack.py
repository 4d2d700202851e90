"""Human review wired into the stacks: the monitoring stack's task UIs and roles (with a workteam setting), the
rendered human-loop schedule, and the scheduled job itself, all offline.

What is checked against AWS's own specs: the templates with cfn-lint's resource schemas (and cdk-nag at
synthesis), each request the schedule and the job send with botocore's Stubber (every parameter against the
service model), each role's statements with policy_sentry (``test_iam_conformance.py``, which covers these
roles through ``all_options_app``). What is checked here is that the pieces fit: every call the job makes is
allowed to its role, on the names the render gives, and nothing more.

Scheduler's universal target and context attributes:
https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-universal.html
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import human_loops
import pytest
import review_rule
from botocore.stub import ANY, Stubber
from cfnlint.api import lint
from moto import mock_aws

from infra.endpoint_template import render_stage
from infra.settings import InfraSettings, SettingsError
from model_build.steps import drift
from model_deploy.aws.names import (
    human_loop_job_role_name,
    human_loop_scheduler_role_name,
    human_review_role_name,
    human_task_ui_name,
)
from model_deploy.aws.render import MonitorInputs, RenderInputs
from model_deploy.local.capture import CaptureWriter
from model_deploy.stage_config import load_stage, load_stages
from tests.infra.conftest import WORKTEAM_ARN, SynthesizedApp
from tests.infra.iam_conformance import ACCOUNT, REGION, resolve, role_statements

INPUTS = RenderInputs(
    data_bucket_name="review-sentiment-dev-data-123456789012-us-east-1",
    encryption_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/6f1c3f0e-2b7a-4d7e-9d5c-1a2b3c4d5e6f",
    artifacts_bucket_name="review-sentiment-dev-artifacts-123456789012-us-east-1",
    human_review_workteam_arn=WORKTEAM_ARN,
)
PACKAGE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/review-sentiment-dev-models/3"
MONITOR = MonitorInputs(
    "s3://review-sentiment-dev-artifacts-123456789012-us-east-1/pipelines/x/e1/EvaluateModel/evaluation/baseline",
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.6.0-transformers5.5.3-cpu-py312",
)
# What Scheduler puts in for its context attributes when the schedule fires.
CONTEXT = {
    "<aws.scheduler.execution-id>": "d32c5kddcf5bb8c3",
    "<aws.scheduler.scheduled-time>": "2026-12-06T10:00:00Z",
}


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, all_options_app: SynthesizedApp) -> dict[str, dict]:
    templates = {}
    for stage in load_stages():
        path = render_stage(
            all_options_app.config,
            load_stage(stage),
            PACKAGE,
            INPUTS,
            tmp_path_factory.mktemp(stage),
            updating=False,
            monitor_inputs=MONITOR,
        )
        templates[stage] = json.loads(path.read_text())
    return templates


def _human_loop_request(template: dict) -> dict[str, Any] | None:
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Scheduler::Schedule" and resource["Properties"]["Name"].endswith(
            "-human-loops"
        ):
            text = str(
                resolve(resource["Properties"]["Target"]["Input"], template)
            )  # the role ARN's partition
            for attribute, value in CONTEXT.items():
                text = text.replace(attribute, value)
            return dict(json.loads(text))
    return None


def _monitoring(app: SynthesizedApp) -> dict:
    return app.templates[app.stacks.monitoring.stack_name]


def _role(template: dict, role_name: str) -> list[dict[str, Any]]:
    (role_id,) = [
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role" and resource["Properties"].get("RoleName") == role_name
    ]
    return role_statements(template, role_id)


def _allows(
    statements: list[dict[str, Any]], action: str, arn: str, template: dict, stacks: dict
) -> list[dict]:
    """The statements that allow ``action`` on ``arn`` (resources resolved to sample ARNs)."""
    found = []
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = resolve(statement["Resource"], template, stacks=stacks)
        resources = resources if isinstance(resources, list) else [resources]
        if action in actions and any(fnmatch.fnmatchcase(arn, str(pattern)) for pattern in resources):
            found.append(statement)
    return found


def test_without_a_workteam_there_is_no_human_review_on_aws(default_app: SynthesizedApp) -> None:
    types = {r["Type"] for r in _monitoring(default_app)["Resources"].values()}
    assert "AWS::SageMaker::HumanTaskUi" not in types
    with pytest.raises(SettingsError, match="humanReviewWorkteamArn='team-7' is not a workteam ARN"):
        InfraSettings.from_context({"humanReviewWorkteamArn": "team-7"})


def test_the_monitoring_stack_has_a_task_ui_per_stage_and_the_roles(all_options_app: SynthesizedApp) -> None:
    template = _monitoring(all_options_app)
    uis = {
        r["Properties"]["HumanTaskUiName"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SageMaker::HumanTaskUi"
    }
    config = all_options_app.config
    assert uis == {human_task_ui_name(config.endpoint_name(stage)) for stage in load_stages()}
    errors = [m for m in lint(json.dumps(template), regions=[REGION]) if m.rule.id.startswith("E")]
    assert errors == [], "\n".join(map(str, errors))
    for name in (
        human_review_role_name(config),
        human_loop_job_role_name(config),
        human_loop_scheduler_role_name(config),
    ):
        assert _role(template, name), name


def test_only_stages_with_a_schedule_get_a_human_loop_job(rendered: dict[str, dict]) -> None:
    scheduled = {stage for stage, template in rendered.items() if _human_loop_request(template) is not None}
    assert scheduled == {
        s for s, c in load_stages().items() if c.human_review.schedule_expression is not None
    }
    assert scheduled == {"prod"}


def test_the_schedule_and_the_flow_definition_requests_follow_botocores_models(
    rendered: dict[str, dict],
) -> None:
    request = _human_loop_request(rendered["prod"])
    assert request is not None
    sagemaker = _client("sagemaker")
    with Stubber(sagemaker) as stub:
        stub.add_response("create_processing_job", {"ProcessingJobArn": "arn:aws:sagemaker:x"}, request)
        sagemaker.create_processing_job(**request)
        arguments = request["AppSpecification"]["ContainerArguments"]
        flow = json.loads(arguments[arguments.index("--flow-definition") + 1])
        stub.add_response("create_flow_definition", {"FlowDefinitionArn": "arn:aws:sagemaker:x"}, flow)
        sagemaker.create_flow_definition(**flow)
        stub.assert_no_pending_responses()
    assert flow["HumanLoopConfig"]["WorkteamArn"] == WORKTEAM_ARN
    assert flow["HumanLoopConfig"]["TaskCount"] == load_stage("prod").human_review.labels_per_item
    assert flow["OutputConfig"]["KmsKeyId"] == INPUTS.encryption_key_arn
    # The job's code is the baseline's code folder, which the evaluation step fills with drift.CODE_FILES.
    (source,) = request["ProcessingInputs"]
    assert source["S3Input"]["S3Uri"] == f"{MONITOR.baseline_uri}/code"
    assert {"human_loops.py", "review_rule.py", "capture_window.py"} <= set(drift.CODE_FILES)
    # The same settings render the same flow definition name (its digest), other settings another.
    again = _human_loop_request(rendered["prod"])
    assert again is not None and again["AppSpecification"] == request["AppSpecification"]


def test_every_call_of_the_job_and_the_schedule_is_allowed_to_its_role_and_no_more(
    all_options_app: SynthesizedApp, rendered: dict[str, dict]
) -> None:
    template, stacks, config = _monitoring(all_options_app), all_options_app.templates, all_options_app.config
    request = _human_loop_request(rendered["prod"])
    assert request is not None
    arguments = request["AppSpecification"]["ContainerArguments"]
    flow = json.loads(arguments[arguments.index("--flow-definition") + 1])
    flow_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/{flow['FlowDefinitionName']}"

    job = _role(template, human_loop_job_role_name(config))
    assert request["RoleArn"].endswith(f":role/{human_loop_job_role_name(config)}")
    for action in (
        "sagemaker:CreateFlowDefinition",
        "sagemaker:DescribeFlowDefinition",
        "sagemaker:StartHumanLoop",
    ):
        assert _allows(job, action, flow_arn, template, stacks), action
    (create,) = _allows(job, "sagemaker:CreateFlowDefinition", flow_arn, template, stacks)
    assert create["Condition"] == {"StringEquals": {"sagemaker:WorkteamArn": WORKTEAM_ARN}}
    other_flow = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/someone-elses"
    assert not _allows(job, "sagemaker:StartHumanLoop", other_flow, template, stacks)
    review_role = f"arn:aws:iam::{ACCOUNT}:role/{human_review_role_name(config)}"
    assert flow["RoleArn"] == review_role
    (passing,) = [s for s in job if s["Action"] == "iam:PassRole"]
    (review_id,) = [
        logical_id
        for logical_id, r in template["Resources"].items()
        if r["Type"] == "AWS::IAM::Role" and r["Properties"].get("RoleName") == human_review_role_name(config)
    ]
    assert passing["Resource"] == {"Fn::GetAtt": [review_id, "Arn"]}, (
        "it passes the review role, and no other"
    )

    scheduler = _role(template, human_loop_scheduler_role_name(config))
    job_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{request['ProcessingJobName']}"
    assert _allows(scheduler, "sagemaker:CreateProcessingJob", job_arn, template, stacks)
    drift_job = job_arn.replace("-h-", "-m-")
    assert not _allows(scheduler, "sagemaker:CreateProcessingJob", drift_job, template, stacks)

    review = _role(template, human_review_role_name(config))
    output = flow["OutputConfig"]["S3OutputPath"].removeprefix("s3://")
    allowed = _allows(review, "s3:PutObject", f"arn:aws:s3:::{output}/loop/output.json", template, stacks)
    assert allowed, "A2I may write the loops' output"
    captures = f"arn:aws:s3:::{INPUTS.data_bucket_name}/data-capture/prod/x.jsonl"
    assert not _allows(review, "s3:GetObject", captures, template, stacks), "nor read the captures"


def test_the_scheduled_job_creates_the_flow_definition_once_and_starts_each_loop_once(tmp_path: Path) -> None:
    """``human_loops.py`` as the schedule runs it: moto's S3 holds the captures; SageMaker and the A2I runtime
    are Stubbers. The first run creates the flow definition and waits for it; a retried run starts nothing."""
    endpoint = "review-sentiment-dev-prod"
    writer = CaptureWriter(tmp_path, endpoint, "AllTraffic", 100)
    for text, (sentiment, probability) in (
        ("Runs small.", ("neutral", 0.45)),
        ("Love it!", ("positive", 0.99)),
    ):
        answer = json.dumps([{"sentiment": sentiment, "probability": probability}]).encode()
        writer.write(json.dumps({"inputs": text}).encode(), "application/json", answer, "application/json")
    writer.close()
    settings = replace(load_stage("prod").human_review, sample_share=0.0)
    flow = review_rule.flow_definition_request(
        f"{endpoint}-review",
        WORKTEAM_ARN,
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-task-ui/{human_task_ui_name(endpoint)}",
        f"arn:aws:iam::{ACCOUNT}:role/review-sentiment-dev-human-review",
        "s3://artifacts/human-review/prod",
        INPUTS.encryption_key_arn,
        settings.labels_per_item,
    )
    flow_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/{flow['FlowDefinitionName']}"
    until = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    argv = [
        "--captures", f"s3://data/data-capture/prod/{endpoint}", "--endpoint", endpoint, "--until", until,
        "--confidence-threshold", str(settings.confidence_threshold), "--sample-share", "0",
        "--flow-definition", json.dumps(flow),
    ]  # fmt: skip
    described = {
        "FlowDefinitionArn": flow_arn,
        "FlowDefinitionName": flow["FlowDefinitionName"],
        "FlowDefinitionStatus": "Active",
        "CreationTime": datetime(2026, 12, 6, tzinfo=UTC),
        "OutputConfig": {"S3OutputPath": "s3://a/human-review"},
        "RoleArn": flow["RoleArn"],
    }
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="data")
        for path in tmp_path.rglob("*.jsonl"):
            s3.upload_file(str(path), "data", f"data-capture/prod/{path.relative_to(tmp_path).as_posix()}")
        sagemaker, a2i = _client("sagemaker"), _client("sagemaker-a2i-runtime")
        with Stubber(sagemaker) as sm, Stubber(a2i) as loops:
            name = {"FlowDefinitionName": flow["FlowDefinitionName"]}
            sm.add_client_error(
                "describe_flow_definition", "ResourceNotFound", "no such", 404, expected_params=name
            )
            sm.add_response("create_flow_definition", {"FlowDefinitionArn": flow_arn}, flow)
            sm.add_response("describe_flow_definition", described, name)
            start = {
                "HumanLoopName": ANY,
                "FlowDefinitionArn": flow_arn,
                "HumanLoopInput": ANY,
                "DataAttributes": ANY,
            }
            loops.add_response("start_human_loop", {"HumanLoopArn": f"{flow_arn}/loop"}, start)
            first = human_loops.run(human_loops.parse_args(argv), sagemaker, a2i, s3)
            sm.add_response("describe_flow_definition", described, name)  # a retried run: it exists
            loops.add_client_error(
                "start_human_loop", "ConflictException", "exists", 409, expected_params=start
            )
            second = human_loops.run(human_loops.parse_args(argv), sagemaker, a2i, s3)
            sm.assert_no_pending_responses()
            loops.assert_no_pending_responses()
    assert (first["reviews"], first["candidates"], first["started"]) == (2, 1, 1)
    assert first["flow_definition"] == {"arn": flow_arn, "created": True}
    assert (second["started"], second["started_before"], second["flow_definition"]["created"]) == (
        0,
        1,
        False,
    )
