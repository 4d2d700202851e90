"""The monitoring stack (alarms, topic, retraining, dashboard), the schedule in the prod endpoint stack, and the
function that retrains on drift."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match
from cfnlint.api import lint

from infra.constructs.drift_monitor import UNIVERSAL_TARGET
from infra.endpoint_template import render_stage
from model_deploy.aws.names import (
    drift_alarm_name,
    monitor_job_role_name,
    monitor_metric_namespace,
    monitor_scheduler_role_name,
)
from model_deploy.aws.render import MonitorInputs, RenderInputs
from model_deploy.stage_config import load_stage
from tests.infra.conftest import SynthesizedApp, render

PROD = load_stage("prod").monitoring
FUNCTION = Path(__file__).resolve().parents[2] / "infra" / "functions" / "retrain_on_drift.py"


def test_persistent_drift_alarms_on_the_monitors_metric_and_notifies_an_encrypted_topic(
    default_app: SynthesizedApp,
) -> None:
    config = default_app.config
    template = default_app.template("monitoring")
    endpoint = config.endpoint_name("prod")
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": drift_alarm_name(endpoint),
            "Namespace": monitor_metric_namespace(config),
            "MetricName": "Drift",
            "Dimensions": [{"Name": "EndpointName", "Value": endpoint}],
            "Statistic": "Maximum",
            "Period": PROD.window_hours * 3600,
            "EvaluationPeriods": PROD.drift_alarm_periods,
            "DatapointsToAlarm": PROD.drift_alarm_periods,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": Match.string_like_regexp("Topic")}],
        },
    )
    # a monitor that stops reporting while the endpoint takes requests is an alarm of its own, not a quiet
    # endpoint; with no data at all (the day of cdk deploy, no endpoint yet) it is OK, not ALARM
    (silent,) = [
        a for a in template.find_resources("AWS::CloudWatch::Alarm").values() if "silent" in json.dumps(a)
    ]
    properties = silent["Properties"]
    assert properties["TreatMissingData"] == "notBreaching"
    assert properties["EvaluationPeriods"] == properties["DatapointsToAlarm"] == 3
    (expression,) = [m for m in properties["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "IF(FILL(invocations, 0) > 0 AND FILL(runs, 0) == 0, 1, 0)"
    metrics = {m["Id"]: m["MetricStat"] for m in properties["Metrics"] if "MetricStat" in m}
    assert metrics["runs"]["Metric"]["MetricName"] == "Requests" and metrics["runs"]["Stat"] == "SampleCount"
    assert metrics["invocations"]["Metric"]["MetricName"] == "Invocations"
    assert {"Name": "EndpointName", "Value": endpoint} in metrics["invocations"]["Metric"]["Dimensions"]
    template.has_resource_properties("AWS::CloudWatch::Alarm", {"MetricName": "DataQualityIssue"})
    # staging has no schedule in its stage file: no alarms for it
    alarms = default_app.resources("AWS::CloudWatch::Alarm")
    assert not [a for a in alarms.values() if config.endpoint_name("staging") in json.dumps(a)]
    (topic,) = template.find_resources("AWS::SNS::Topic").values()
    key_ref = topic["Properties"]["KmsMasterKeyId"]
    assert list(key_ref) == ["Fn::GetAtt"] and key_ref["Fn::GetAtt"][1] == "Arn"
    (key,) = [k for k in template.find_resources("AWS::KMS::Key").values()]
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert any(s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} for s in statements)


def test_the_alarm_starts_retraining_through_eventbridge_with_the_stages_cooldown(
    default_app: SynthesizedApp,
) -> None:
    config = default_app.config
    template = default_app.template("monitoring")
    (rule,) = template.find_resources("AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.cloudwatch"] and pattern["detail"] == {"state": {"value": ["ALARM"]}}
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    properties = function["Properties"]
    assert properties["Environment"]["Variables"]["PIPELINE_NAME"] == config.build_pipeline_name
    assert properties["Environment"]["Variables"]["COOLDOWN_HOURS"] == str(PROD.retrain_cooldown_hours)
    assert properties["Code"]["ZipFile"] == FUNCTION.read_text()
    policies = render(list(template.find_resources("AWS::IAM::Policy").values()))
    start = [
        s
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "StartBuildPipeline"
    ]
    assert start and start[0]["Resource"].endswith(f":{config.build_pipeline_name}")


def test_the_job_and_scheduler_roles_are_named_for_the_rendered_schedule(default_app: SynthesizedApp) -> None:
    config = default_app.config
    roles = {
        r["Properties"]["RoleName"]: r
        for r in default_app.template("monitoring").find_resources("AWS::IAM::Role").values()
        if "RoleName" in r["Properties"]
    }
    scheduler = roles[monitor_scheduler_role_name(config)]["Properties"]["AssumeRolePolicyDocument"]
    assert scheduler["Statement"][0]["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert roles[monitor_job_role_name(config)]
    policies = render(list(default_app.template("monitoring").find_resources("AWS::IAM::Policy").values()))
    by_sid = {s.get("Sid"): s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]}
    assert by_sid["PublishDriftMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": monitor_metric_namespace(config)}
    }
    assert by_sid["StartMonitoringJobs"]["Resource"].endswith(
        f":processing-job/{config.endpoint_name('prod')}-m-*"
    )
    assert by_sid["PassJobRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


def test_the_dashboard_shows_endpoints_drift_and_pipeline_executions(default_app: SynthesizedApp) -> None:
    config = default_app.config
    (dashboard,) = default_app.template("monitoring").find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(render(dashboard["Properties"]["DashboardBody"]))
    for stage in ("staging", "prod"):
        assert f"{stage}: invocations and errors" in body and f"{stage}: model latency" in body
        assert config.endpoint_name(stage) in body
    assert "prod: drift statistics per monitoring window" in body and "ReviewLengthPSI" in body
    assert "AWS/Sagemaker/ModelBuildingPipeline" in body and "ExecutionFailed" in body
    assert config.pipeline_name in body and "Invocation5XXErrors" in body


INPUTS = RenderInputs(
    data_bucket_name="review-sentiment-dev-data-123456789012-us-east-1",
    encryption_key_arn="arn:aws:kms:us-east-1:123456789012:key/6f1c3f0e-2b7a-4d7e-9d5c-1a2b3c4d5e6f",
    artifacts_bucket_name="review-sentiment-dev-artifacts-123456789012-us-east-1",
)
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/review-sentiment-dev-models/3"
BASELINE = "s3://review-sentiment-dev-artifacts-123456789012-us-east-1/pipelines/x/e1/EvaluateModel/evaluation/monitoring-baseline"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.6.0-transformers5.5.3-cpu-py312"
MONITOR = MonitorInputs(BASELINE, IMAGE)


@pytest.fixture(scope="module")
def prod_template(tmp_path_factory: pytest.TempPathFactory, default_app: SynthesizedApp) -> tuple[Path, dict]:
    path = render_stage(
        default_app.config, load_stage("prod"), PACKAGE, INPUTS, tmp_path_factory.mktemp("prod"),
        updating=False, monitor_inputs=MONITOR,
    )  # fmt: skip
    return path, json.loads(path.read_text())


def test_the_prod_endpoint_stack_schedules_the_monitoring_job(
    prod_template: tuple[Path, dict], default_app: SynthesizedApp
) -> None:
    config = default_app.config
    path, template = prod_template
    (schedule,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Scheduler::Schedule"]
    properties = schedule["Properties"]
    assert properties["ScheduleExpression"] == PROD.schedule_expression
    target = properties["Target"]
    assert target["Arn"] == UNIVERSAL_TARGET
    assert render(target["RoleArn"]).endswith(f":role/{monitor_scheduler_role_name(config)}")
    request = json.loads(render(target["Input"]))
    endpoint = config.endpoint_name("prod")
    assert request["ProcessingJobName"] == f"{endpoint}-m-<aws.scheduler.execution-id>"
    assert request["ProcessingInputs"][0]["S3Input"]["S3Uri"] == BASELINE
    assert request["AppSpecification"]["ImageUri"] == IMAGE
    entry = request["AppSpecification"]["ContainerEntrypoint"]
    assert entry[:2] == ["/bin/bash", "-c"] and "code/monitor.py" in entry[2]
    arguments = request["AppSpecification"]["ContainerArguments"]
    flags = dict(zip(arguments[::2], arguments[1::2], strict=False))
    assert flags["--captures"] == f"s3://{INPUTS.data_bucket_name}/data-capture/prod/{endpoint}"
    assert flags["--until"] == "<aws.scheduler.scheduled-time>"
    assert json.loads(flags["--thresholds"]) == PROD.thresholds.as_json()
    assert flags["--publish-metrics"] == monitor_metric_namespace(config)
    output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    assert (
        output == f"s3://{INPUTS.artifacts_bucket_name}/monitoring/{endpoint}/{request['ProcessingJobName']}"
    )
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == INPUTS.encryption_key_arn
    # and the template stays deployable
    matches = lint(path.read_text(), config=None)
    assert [str(m) for m in matches if m.rule.id.startswith("E")] == []


def test_without_a_baseline_or_a_schedule_no_monitor_is_rendered(
    tmp_path: Path, default_app: SynthesizedApp
) -> None:
    for stage, monitor in (("prod", None), ("staging", MONITOR)):
        path = render_stage(
            default_app.config, load_stage(stage), PACKAGE, INPUTS, tmp_path / stage, updating=False,
            monitor_inputs=monitor,
        )  # fmt: skip
        types = {r["Type"] for r in json.loads(path.read_text())["Resources"].values()}
        assert "AWS::Scheduler::Schedule" not in types


def _function():
    spec = importlib.util.spec_from_file_location("retrain_on_drift", FUNCTION)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeCodePipeline:
    def __init__(self, last_start: datetime | None) -> None:
        self.last_start = last_start
        self.started: list[dict[str, Any]] = []

    def list_pipeline_executions(self, **kwargs: Any) -> dict[str, Any]:
        if self.last_start is None:
            return {"pipelineExecutionSummaries": []}
        return {
            "pipelineExecutionSummaries": [
                {"pipelineExecutionId": "old-1", "status": "Succeeded", "startTime": self.last_start}
            ]
        }

    def start_pipeline_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.started.append(kwargs)
        return {"pipelineExecutionId": "new-1"}


class FakeSns:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> None:
        self.messages.append(kwargs)


@pytest.mark.parametrize(
    ("hours_ago", "started"), [(None, True), (30, True), (2, False)], ids=["never", "long-ago", "within"]
)
def test_the_function_retrains_at_most_once_per_cooldown(
    monkeypatch: pytest.MonkeyPatch, hours_ago: int | None, started: bool
) -> None:
    monkeypatch.setenv("PIPELINE_NAME", "review-sentiment-dev-model-build")
    monkeypatch.setenv("COOLDOWN_HOURS", "24")
    monkeypatch.setenv("TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:topic")
    last = None if hours_ago is None else datetime.now(UTC) - timedelta(hours=hours_ago)
    codepipeline, sns = FakeCodePipeline(last), FakeSns()
    event = {"id": "7bf73129-1428-4cd3-a780-95db273d1602",
             "detail": {"alarmName": "review-sentiment-dev-prod-drift", "state": {"value": "ALARM", "reason": "3 of 3"}}}  # fmt: skip
    result = _function().handler(event, None, {"codepipeline": codepipeline, "sns": sns})
    assert result["started"] is started
    if started:
        assert codepipeline.started == [
            {"name": "review-sentiment-dev-model-build", "clientRequestToken": event["id"]}
        ]
        assert "started execution new-1" in sns.messages[0]["Message"]
    else:
        assert codepipeline.started == []
        assert "not started: execution old-1 (Succeeded)" in sns.messages[0]["Message"]
        assert "within the 1 day, 0:00:00 cool-down" in sns.messages[0]["Message"]
    assert sns.messages[0]["TopicArn"].endswith(":topic") and len(sns.messages[0]["Subject"]) < 100


def test_the_render_finds_the_baseline_beside_the_packages_evaluation_report() -> None:
    from model_deploy.aws.monitoring import monitor_inputs

    report = "s3://artifacts/pipelines/build/e1/EvaluateModel/evaluation/evaluation.json"

    class FakeSageMaker:
        def __init__(self, package: dict[str, Any]) -> None:
            self.package = package

        def describe_model_package(self, ModelPackageName: str) -> dict[str, Any]:
            assert ModelPackageName == PACKAGE
            return self.package

    package = {
        "ModelMetrics": {"ModelQuality": {"Statistics": {"S3Uri": report}}},
        "InferenceSpecification": {"Containers": [{"Image": IMAGE}]},
    }
    assert monitor_inputs(FakeSageMaker(package), PACKAGE) == MonitorInputs(
        "s3://artifacts/pipelines/build/e1/EvaluateModel/evaluation/monitoring-baseline", IMAGE
    )
    assert (
        monitor_inputs(FakeSageMaker({"InferenceSpecification": package["InferenceSpecification"]}), PACKAGE)
        is None
    )
