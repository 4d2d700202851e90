"""The endpoint stack as the pipeline renders it: model, data capture, guardrails, alarms, autoscaling.

The templates come from ``infra.endpoint_template.render_stage`` (what the render action runs) with the real
stage files, so they are checked by cdk-nag while rendering and by cfn-lint here, as every stack of the app is.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from cfnlint.api import lint

from infra.constructs.endpoint import CSV_CONTENT_TYPES, JSON_CONTENT_TYPES, ModelEndpoint, ModelEndpointProps
from infra.endpoint_template import TEMPLATE_BODY_LIMIT, render_stage
from model_build.config import ProjectConfig
from model_deploy.aws.deploy import has_autoscaling, without_autoscaling
from model_deploy.aws.names import VARIANT_NAME, alarm_names
from model_deploy.aws.render import RenderInputs
from model_deploy.stage_config import StageConfig, load_stage, load_stages

CONFIG = ProjectConfig()
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/review-sentiment-dev-models/3"
NEXT_PACKAGE = PACKAGE.replace("/3", "/4")
INPUTS = RenderInputs(
    data_bucket_name="review-sentiment-dev-data-123456789012-us-east-1",
    encryption_key_arn="arn:aws:kms:us-east-1:123456789012:key/6f1c3f0e-2b7a-4d7e-9d5c-1a2b3c4d5e6f",
)


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Both stages for version 3 (``staging``, ``prod``), prod updating to version 4 (``prod-next``)."""
    rendered = {}
    for stage, config in load_stages().items():
        path = render_stage(CONFIG, config, PACKAGE, INPUTS, tmp_path_factory.mktemp(stage), updating=False)
        rendered[stage] = json.loads(path.read_text())
    path = render_stage(
        CONFIG, load_stage("prod"), NEXT_PACKAGE, INPUTS, tmp_path_factory.mktemp("next"), updating=True
    )
    rendered["prod-next"] = json.loads(path.read_text())
    return rendered


def _one(template: dict[str, Any], cfn_type: str) -> dict[str, Any]:
    (resource,) = [r for r in template["Resources"].values() if r["Type"] == cfn_type]
    return resource


def _logical_ids(template: dict[str, Any]) -> dict[str, str]:
    return {r["Type"]: logical_id for logical_id, r in template["Resources"].items()}


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_the_model_is_the_package_with_the_stage_files_batching(templates: dict, stage: str) -> None:
    model = _one(templates[stage], "AWS::SageMaker::Model")["Properties"]
    assert model["PrimaryContainer"] == {
        "ModelPackageName": PACKAGE,
        "Environment": load_stage(stage).serving.container_environment(),
    }
    role = model["ExecutionRoleArn"]["Fn::Join"][1][-1]
    assert role == f":role/{CONFIG.prefix}-endpoint-{stage}"


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_data_capture_writes_text_into_the_stages_encrypted_prefix(templates: dict, stage: str) -> None:
    config = _one(templates[stage], "AWS::SageMaker::EndpointConfig")["Properties"]
    capture = config["DataCaptureConfig"]
    assert capture["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    assert capture["CaptureContentTypeHeader"] == {
        "JsonContentTypes": list(JSON_CONTENT_TYPES),
        "CsvContentTypes": list(CSV_CONTENT_TYPES),
    }
    assert set(JSON_CONTENT_TYPES + CSV_CONTENT_TYPES) >= {
        "application/json",
        "application/jsonlines",
        "text/csv",
    }
    assert capture["DestinationS3Uri"] == f"s3://{INPUTS.data_bucket_name}/data-capture/{stage}"
    assert capture["InitialSamplingPercentage"] == load_stage(stage).data_capture.sampling_percentage
    assert capture["KmsKeyId"] == config["KmsKeyId"] == INPUTS.encryption_key_arn
    (variant,) = config["ProductionVariants"]
    endpoint = load_stage(stage).endpoint
    assert (variant["VariantName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        VARIANT_NAME,
        endpoint.instance_type,
        endpoint.initial_instance_count,
    )


def test_prod_updates_blue_green_with_a_canary_and_rolls_back_on_the_alarms(templates: dict) -> None:
    deployment = load_stage("prod").deployment
    properties = _one(templates["prod"], "AWS::SageMaker::Endpoint")["Properties"]
    assert properties["EndpointName"] == CONFIG.endpoint_name("prod")
    policy = properties["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy == {
        "TrafficRoutingConfiguration": {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": deployment.canary_size_percent},
            "WaitIntervalInSeconds": deployment.wait_seconds,
        },
        "TerminationWaitInSeconds": deployment.termination_wait_seconds,
        "MaximumExecutionTimeoutInSeconds": deployment.maximum_execution_timeout_seconds,
    }
    alarms = properties["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    ids = {
        r["Properties"]["AlarmName"]: i
        for i, r in templates["prod"]["Resources"].items()
        if "AlarmName" in r["Properties"]
    }
    assert alarms == [
        {"AlarmName": {"Ref": ids[name]}} for name in alarm_names(CONFIG.endpoint_name("prod")).values()
    ]


def test_staging_with_one_instance_shifts_all_at_once_but_still_bakes(templates: dict) -> None:
    deployment = load_stage("staging").deployment
    policy = _one(templates["staging"], "AWS::SageMaker::Endpoint")["Properties"]["DeploymentConfig"]
    routing = policy["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": deployment.wait_seconds}
    assert len(policy["AutoRollbackConfiguration"]["Alarms"]) == 2


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_the_alarms_watch_the_variants_errors_and_latency_at_the_stage_files_thresholds(
    templates: dict, stage: str
) -> None:
    settings = load_stage(stage).alarms
    endpoint = CONFIG.endpoint_name(stage)
    alarms = {
        r["Properties"]["MetricName"]: r["Properties"]
        for r in templates[stage]["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert set(alarms) == {"Invocation5XXErrors", "ModelLatency"}
    for metric, alarm in alarms.items():
        assert alarm["AlarmName"] == alarm_names(endpoint)[metric]
        assert alarm["Namespace"] == "AWS/SageMaker"
        assert alarm["Dimensions"] == [
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": VARIANT_NAME},
        ]
        assert (alarm["Period"], alarm["EvaluationPeriods"]) == (
            settings.period_seconds,
            settings.evaluation_periods,
        )
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
    assert (alarms["Invocation5XXErrors"]["Statistic"], alarms["Invocation5XXErrors"]["Threshold"]) == (
        "Sum",
        settings.max_invocation_5xx_errors,
    )
    # ModelLatency is in microseconds; the stage file says milliseconds.
    assert (alarms["ModelLatency"]["Statistic"], alarms["ModelLatency"]["Threshold"]) == (
        "Average",
        settings.max_model_latency_ms * 1000,
    )


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_target_tracking_on_invocations_per_instance_registers_after_the_endpoint(
    templates: dict, stage: str
) -> None:
    template = templates[stage]
    settings = load_stage(stage).autoscaling
    target = _one(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert {key: value for key, value in target["Properties"].items() if key != "Tags"} == {
        "ServiceNamespace": "sagemaker",
        "ResourceId": f"endpoint/{CONFIG.endpoint_name(stage)}/variant/{VARIANT_NAME}",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "MinCapacity": settings.min_instances,
        "MaxCapacity": settings.max_instances,
    }
    assert target["DependsOn"] == [_logical_ids(template)["AWS::SageMaker::Endpoint"]]
    policy = _one(template, "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"]
    assert policy["ScalingTargetId"] == {
        "Ref": _logical_ids(template)["AWS::ApplicationAutoScaling::ScalableTarget"]
    }
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "TargetValue": settings.target_invocations_per_instance,
        "ScaleInCooldown": settings.scale_in_cooldown_seconds,
        "ScaleOutCooldown": settings.scale_out_cooldown_seconds,
    }


def test_a_new_version_replaces_model_and_config_but_updates_the_same_endpoint_and_variant(
    templates: dict,
) -> None:
    before, after = templates["prod"], templates["prod-next"]
    assert _logical_ids(before) == _logical_ids(after), (
        "same resources: CloudFormation updates, never recreates"
    )
    for cfn_type, key in (
        ("AWS::SageMaker::Model", "ModelName"),
        ("AWS::SageMaker::EndpointConfig", "EndpointConfigName"),
    ):
        old, new = _one(before, cfn_type)["Properties"][key], _one(after, cfn_type)["Properties"][key]
        assert (
            old != new
            and old.startswith(f"{CONFIG.endpoint_name('prod')}-3-")
            and new.startswith(f"{CONFIG.endpoint_name('prod')}-4-")
        )
    variants = [
        _one(t, "AWS::SageMaker::EndpointConfig")["Properties"]["ProductionVariants"][0]["VariantName"]
        for t in (before, after)
    ]
    assert variants == [VARIANT_NAME, VARIANT_NAME]
    endpoints = [_one(t, "AWS::SageMaker::Endpoint")["Properties"]["EndpointName"] for t in (before, after)]
    assert endpoints == [CONFIG.endpoint_name("prod")] * 2


def test_the_config_tags_are_on_every_endpoint_resource(templates: dict) -> None:
    expected = [{"Key": key, "Value": value} for key, value in sorted(CONFIG.tags.items())]
    for name, template in templates.items():
        for cfn_type in (
            "AWS::SageMaker::Model",
            "AWS::SageMaker::EndpointConfig",
            "AWS::SageMaker::Endpoint",
        ):
            assert _one(template, cfn_type)["Properties"]["Tags"] == expected, f"{name}: {cfn_type}"


def test_the_template_deploys_anywhere_without_iam_or_bootstrap(templates: dict) -> None:
    for name, template in templates.items():
        types = {r["Type"] for r in template["Resources"].values()}
        assert not any(t.startswith("AWS::IAM::") for t in types), name
        assert "Parameters" not in template and "Rules" not in template, f"{name}: needs cdk bootstrap"
        assert len(json.dumps(template, indent=1)) < TEMPLATE_BODY_LIMIT


@pytest.mark.parametrize("name", ["staging", "prod", "prod-next"])
def test_templates_and_their_autoscaling_free_step_pass_cfn_lint(
    templates: dict, name: str, tmp_path: Path
) -> None:
    stripped = without_autoscaling(templates[name])
    assert has_autoscaling(templates[name]) and not has_autoscaling(stripped)
    for template in (templates[name], stripped):
        matches = lint(json.dumps(template), regions=[CONFIG.region])
        errors = [str(match) for match in matches if match.rule.id.startswith("E")]
        assert errors == []


def _props(stage: StageConfig, **changes: Any) -> ModelEndpointProps:
    return ModelEndpointProps(
        endpoint_name=changes.pop("endpoint_name", CONFIG.endpoint_name(stage.stage)),
        model_package_arn=PACKAGE,
        execution_role_name="role",
        stage=stage,
        data_bucket_name=INPUTS.data_bucket_name,
        data_capture_key="data-capture/prod",
        encryption_key_arn=INPUTS.encryption_key_arn,
        **changes,
    )


def _with(stage: StageConfig, section: str, **values: Any) -> StageConfig:
    return dataclasses.replace(stage, **{section: dataclasses.replace(getattr(stage, section), **values)})


def test_a_canary_on_a_single_instance_is_refused() -> None:
    """SageMaker needs a canary of at least one instance and at most half: a fleet of one has neither."""
    staging = load_stage("staging")
    single = _with(staging, "deployment", traffic_routing="CANARY", canary_size_percent=50)
    with pytest.raises(ValueError, match="less than one instance; use traffic_routing ALL_AT_ONCE"):
        _props(single)
    _props(staging)  # the shipped staging file shifts all at once, so it is accepted


def test_a_package_image_of_the_other_processor_type_is_refused() -> None:
    """The endpoint runs the package's image on the stage's instances: CPU with CPU, GPU with GPU."""
    cpu = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"
    prod = load_stage("prod")
    _props(prod, model_image=cpu)
    with pytest.raises(
        ValueError, match=r"prod: the model package .* cannot serve on ml\.m5\.xlarge: .*GPU image"
    ):
        _props(prod, model_image=cpu.replace("-cpu-", "-gpu-"))
    gpu_stage = _with(prod, "endpoint", instance_type="ml.g5.xlarge")
    with pytest.raises(ValueError, match=re.escape("CPU image but ml.g5.xlarge is a GPU instance")):
        _props(gpu_stage, model_image=cpu)
    # An older approved version keeps the torch it was trained with: only the processor is checked here.
    _props(prod, model_image=cpu.replace("2.6.0", "2.5.1").replace("py312", "py311"))


def test_a_stage_on_an_instance_type_the_package_does_not_list_is_refused() -> None:
    """The package's SupportedRealtimeInferenceInstanceTypes must hold the stage's instance type; a package that
    lists none (optional for versioned packages) is not checked."""
    prod = load_stage("prod")
    with pytest.raises(
        ValueError,
        match=re.escape("prod: the model package ")
        + r".*lists ml\.m5\.large for real-time inference, not ml\.m5\.xlarge",
    ):
        _props(prod, package_instance_types=("ml.m5.large",))
    _props(prod, package_instance_types=("ml.m5.large", "ml.m5.xlarge"))
    _props(prod, package_instance_types=())


def test_a_linear_shift_uses_the_step_size() -> None:
    prod = _with(load_stage("prod"), "deployment", traffic_routing="LINEAR", canary_size_percent=50)
    stack = Stack(App(), "Linear")
    endpoint = ModelEndpoint(stack, "Endpoint", _props(prod))
    routing = stack.resolve(endpoint.endpoint.deployment_config)["blueGreenUpdatePolicy"][
        "trafficRoutingConfiguration"
    ]
    assert routing["type"] == "LINEAR"
    assert routing["linearStepSize"] == {"type": "CAPACITY_PERCENT", "value": 50}
    assert "canarySize" not in routing
    metric = endpoint.metric_invocations_per_instance()
    assert (metric.metric_name, metric.namespace, metric.dimensions) == (
        "InvocationsPerInstance",
        "AWS/SageMaker",
        {"EndpointName": CONFIG.endpoint_name("prod"), "VariantName": VARIANT_NAME},
    )


def test_an_endpoint_name_too_long_for_its_model_names_is_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        _props(load_stage("prod"), endpoint_name="x" * 60)


def test_an_instance_type_with_local_storage_gets_no_kms_key_on_its_volume(tmp_path: Path) -> None:
    """SageMaker refuses CreateEndpointConfig with a KmsKeyId on instances with local (NVMe) storage; the
    capture files in S3 stay encrypted with the project key."""
    stage = load_stage("staging")
    path = render_stage(CONFIG, stage, PACKAGE, INPUTS, tmp_path, updating=False, local_storage=True)
    config = _one(json.loads(path.read_text()), "AWS::SageMaker::EndpointConfig")["Properties"]
    assert "KmsKeyId" not in config
    assert config["DataCaptureConfig"]["KmsKeyId"] == INPUTS.encryption_key_arn


def test_local_storage_is_read_from_ec2s_description_of_the_instance_type() -> None:
    import boto3
    from botocore.stub import Stubber

    from model_deploy.aws.render import has_local_storage

    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    with Stubber(ec2) as stubber:
        for ec2_type, supported in (("g5.xlarge", True), ("m5.xlarge", False)):
            stubber.add_response(
                "describe_instance_types",
                {"InstanceTypes": [{"InstanceType": ec2_type, "InstanceStorageSupported": supported}]},
                {"InstanceTypes": [ec2_type]},
            )
        stubber.add_client_error("describe_instance_types", service_error_code="InvalidInstanceType")
        assert has_local_storage(ec2, "ml.g5.xlarge") is True
        assert has_local_storage(ec2, "ml.m5.xlarge") is False
        with pytest.raises(ValueError, match=r"cannot tell whether ml\.x9\.large has local storage"):
            has_local_storage(ec2, "ml.x9.large")
