"""``python -m model_deploy``: what each command calls, prints and exits with, against stubbed AWS clients."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY

from model_deploy.aws.release import Release, StagePlan, template_file
from model_deploy.cli import main
from model_deploy.smoke_test import SENTIMENT_LABELS, UNMISTAKABLE
from model_deploy.stage_config import load_stage, load_stages
from tests.model_deploy.aws.conftest import (
    GROUP,
    REGION,
    SERVING_IMAGE,
    StubbedClients,
    package_arn,
    stub_instance_storage,
    stub_package_image,
    stub_serving,
    summary,
)

STAGING = "review-sentiment-dev-staging"
PROD = "review-sentiment-dev-prod"
PIPELINE = "review-sentiment-dev-model-deploy"
DATA_BUCKET = "review-sentiment-dev-data-123456789012-us-east-1"
KMS_KEY = f"arn:aws:kms:{REGION}:123456789012:key/6f1c3f0e-2b7a-4d7e-9d5c-1a2b3c4d5e6f"
LIST_PARAMS = {
    "ModelPackageGroupName": GROUP,
    "ModelApprovalStatus": "Approved",
    "ModelPackageType": "Versioned",
}


def stub_registry(aws: StubbedClients, *summaries: dict[str, Any]) -> None:
    aws.stub("sagemaker").add_response(
        "list_model_packages", {"ModelPackageSummaryList": list(summaries)}, LIST_PARAMS
    )


def stub_stop(aws: StubbedClients, execution_id: str) -> None:
    aws.stub("codepipeline").add_response(
        "stop_pipeline_execution",
        {"pipelineExecutionId": execution_id},
        {"pipelineName": PIPELINE, "pipelineExecutionId": execution_id, "abandon": False, "reason": ANY},
    )


def test_resolve_names_the_newest_version_and_what_each_stage_serves(
    aws: StubbedClients, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_registry(aws, summary(3), summary(4))
    stub_serving(aws.stub("sagemaker"), STAGING, package_arn(4))
    stub_serving(aws.stub("sagemaker"), PROD, package_arn(3))
    assert main(["resolve"], aws) == 0
    out = capsys.readouterr().out
    assert f"Rolling out version 4 ({package_arn(4)}" in out
    assert f"staging: {STAGING} serves {package_arn(4)}; already serves it: left alone" in out
    assert f"prod: {PROD} serves {package_arn(3)}; will be deployed" in out
    aws.assert_no_pending_responses()


def test_render_with_nothing_approved_touches_no_endpoint_and_stops_the_execution(
    aws: StubbedClients, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_registry(aws, summary(1, status="PendingManualApproval"))
    stub_serving(aws.stub("sagemaker"), STAGING, None)
    stub_serving(aws.stub("sagemaker"), PROD, None)
    stub_stop(aws, "exec-1")
    assert main(["render", "--out", str(tmp_path), "--execution-id", "exec-1"], aws) == 0
    out = capsys.readouterr().out
    assert f"No approved model version in {GROUP}: nothing to deploy, no endpoint touched." in out
    assert f"Stopping execution exec-1 of {PIPELINE}" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.json"]
    release = Release.read(tmp_path)
    assert release.model_package_arn is None and release.nothing_to_do
    assert {plan.action for plan in release.stages.values()} == {"none"}
    aws.assert_no_pending_responses()


def test_render_of_a_duplicate_event_stops_when_every_stage_serves_the_version(
    aws: StubbedClients, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_EXECUTION_ID", "exec-2")
    stub_registry(aws, summary(4), summary(2))
    stub_serving(aws.stub("sagemaker"), STAGING, package_arn(4))
    stub_serving(aws.stub("sagemaker"), PROD, package_arn(4))
    stub_stop(aws, "exec-2")
    assert main(["render", "--out", str(tmp_path)], aws) == 0
    assert "Every stage already serves version 4" in capsys.readouterr().out
    assert not any(tmp_path.glob("*-template.json"))
    aws.assert_no_pending_responses()


def test_render_without_an_execution_id_leaves_it_to_the_later_actions(
    aws: StubbedClients, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_registry(aws)
    stub_serving(aws.stub("sagemaker"), STAGING, None)
    stub_serving(aws.stub("sagemaker"), PROD, None)
    assert main(["render", "--out", str(tmp_path)], aws) == 0  # no codepipeline call stubbed: none is made
    assert "the later actions will find nothing to do" in capsys.readouterr().out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """A new version: staging serves an older one (an update), prod serves nothing yet (a creation)."""
    outdir = tmp_path_factory.mktemp("rendered")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        for variable in ("MLOPS_PROJECT_NAME", "MLOPS_ENVIRONMENT"):
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv("DATA_BUCKET", DATA_BUCKET)
        monkeypatch.setenv("KMS_KEY_ARN", KMS_KEY)
        monkeypatch.setenv("PIPELINE_EXECUTION_ID", "exec-3")
        monkeypatch.delenv("ARTIFACT_BUCKET", raising=False)
        monkeypatch.setenv("ARTIFACTS_BUCKET", "the-old-spelling-is-not-read")
        aws = StubbedClients()
        stub_registry(aws, summary(3), summary(5))
        stub_serving(aws.stub("sagemaker"), STAGING, package_arn(3))
        stub_serving(aws.stub("sagemaker"), PROD, None)
        stub_package_image(aws.stub("sagemaker"), package_arn(5))
        for stage in load_stages().values():
            stub_instance_storage(aws.stub("ec2"), stage.endpoint.instance_type)
        aws.stub("codepipeline")  # a rollout is not stopped: any call would fail
        out, err = io.StringIO(), io.StringIO()
        with monkeypatch.context() as streams:
            streams.setattr(sys, "stdout", out)
            streams.setattr(sys, "stderr", err)
            status = main(["render", "--out", str(outdir)], aws)
        aws.assert_no_pending_responses()
    return status, out.getvalue() + err.getvalue(), outdir


def test_render_writes_each_stages_template_and_settings(rendered: tuple[int, str, Path]) -> None:
    status, output, outdir = rendered
    assert status == 0, output
    # No ARTIFACT_BUCKET (the build project's spelling, which the deploy pipeline sets too): no monitor.
    assert "no drift monitor: no ARTIFACT_BUCKET\n" in output
    assert f"Rolling out version 5 ({package_arn(5)}" in output
    assert sorted(p.name for p in outdir.iterdir()) == [
        "prod-config.json",
        "prod-template.json",
        "release.json",
        "staging-config.json",
        "staging-template.json",
    ]
    release = Release.read(outdir)
    assert release.model_package_arn == package_arn(5) and release.model_package_version == 5
    assert {stage: plan.action for stage, plan in release.stages.items()} == {
        "staging": "deploy",
        "prod": "deploy",
    }
    assert release.stages["staging"].serving == package_arn(3)
    assert release.stages["prod"].stack_name == "review-sentiment-dev-endpoint-prod"
    settings = json.loads((outdir / "prod-config.json").read_text())
    assert settings["ModelPackageArn"] == package_arn(5) and settings["stage"] == "prod"


def test_an_existing_endpoint_keeps_its_instance_count_a_new_one_does_not(
    rendered: tuple[int, str, Path],
) -> None:
    """CloudFormation refuses RetainAllVariantProperties on creation; on update it keeps the scaled count."""
    _, _, outdir = rendered

    def endpoint(stage: str) -> dict[str, Any]:
        template = json.loads((outdir / template_file(stage)).read_text())
        (resource,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Endpoint"]
        return resource["Properties"]

    assert endpoint("staging")["RetainAllVariantProperties"] is True
    assert endpoint("staging")["ExcludeRetainedVariantProperties"] == [
        {"VariantPropertyType": "DataCaptureConfig"}
    ]
    assert "RetainAllVariantProperties" not in endpoint("prod")
    assert "ExcludeRetainedVariantProperties" not in endpoint("prod")


def test_render_refuses_a_package_whose_image_does_not_fit_a_stages_instances(
    aws: StubbedClients, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package registered with the GPU image cannot serve on the stages' CPU instances: nothing rendered."""
    monkeypatch.setenv("DATA_BUCKET", DATA_BUCKET)
    monkeypatch.setenv("KMS_KEY_ARN", KMS_KEY)
    stub_registry(aws, summary(5))
    stub_serving(aws.stub("sagemaker"), STAGING, None)
    stub_serving(aws.stub("sagemaker"), PROD, None)
    stub_package_image(aws.stub("sagemaker"), package_arn(5), SERVING_IMAGE.replace("-cpu-", "-gpu-"))
    stub_instance_storage(aws.stub("ec2"), load_stage("staging").endpoint.instance_type)
    assert main(["render", "--out", str(tmp_path)], aws) == 2
    error = capsys.readouterr().err
    assert f"staging: the model package {package_arn(5)} cannot serve on ml.m5.large" in error
    assert "GPU image but ml.m5.large is a CPU instance" in error
    assert not list(tmp_path.glob("*-template.json"))
    aws.assert_no_pending_responses()


def test_render_refuses_a_package_not_registered_for_a_stages_instance_type(
    aws: StubbedClients, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version that lists only ml.m5.large (what the pipeline registered before it read the stage files)
    is not rendered for prod, which serves ml.m5.xlarge: SageMaker would not refuse it, so the render does."""
    monkeypatch.setenv("DATA_BUCKET", DATA_BUCKET)
    monkeypatch.setenv("KMS_KEY_ARN", KMS_KEY)
    stub_registry(aws, summary(5))
    stub_serving(aws.stub("sagemaker"), STAGING, None)
    stub_serving(aws.stub("sagemaker"), PROD, None)
    stub_package_image(aws.stub("sagemaker"), package_arn(5), instance_types=("ml.m5.large",))
    for stage in load_stages().values():
        stub_instance_storage(aws.stub("ec2"), stage.endpoint.instance_type)
    assert main(["render", "--out", str(tmp_path)], aws) == 2
    error = capsys.readouterr().err
    assert f"prod: the model package {package_arn(5)} lists ml.m5.large for real-time inference" in error
    assert "not ml.m5.xlarge (endpoint.instance_type in model_deploy/stages/prod.json)" in error
    assert not (tmp_path / "prod-template.json").exists()
    aws.assert_no_pending_responses()


def test_render_needs_the_bucket_and_key_from_the_pipeline(
    aws: StubbedClients, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_registry(aws, summary(5))
    stub_serving(aws.stub("sagemaker"), STAGING, None)
    stub_serving(aws.stub("sagemaker"), PROD, None)
    assert main(["render", "--out", str(tmp_path)], aws) == 2
    assert "$DATA_BUCKET is not set" in capsys.readouterr().err


def _release(directory: Path, package: str | None) -> Path:
    action = "none" if package is None else "deploy"
    stages = {
        stage: StagePlan(stage, endpoint, f"review-sentiment-dev-endpoint-{stage}", action, None)
        for stage, endpoint in (("staging", STAGING), ("prod", PROD))
    }
    Release(package, 5 if package else None, stages, "test release").write(directory)
    for stage in stages:
        (directory / template_file(stage)).write_text(json.dumps({"Resources": {}}))
    return directory


def test_deploy_with_nothing_approved_does_nothing(
    aws: StubbedClients, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.stub("sagemaker")
    aws.stub("cloudformation")
    assert main(["deploy", "--stage", "prod", "--release", str(_release(tmp_path, None))], aws) == 0
    assert "prod: test release" in capsys.readouterr().out


def test_deploy_of_a_stage_that_serves_the_version_says_so(
    aws: StubbedClients, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFORMATION_ROLE_ARN", "arn:aws:iam::123456789012:role/endpoint-stacks")
    stub_serving(aws.stub("sagemaker"), PROD, package_arn(5))
    aws.stub("cloudformation")
    assert main(["deploy", "--stage", "prod", "--release", str(_release(tmp_path, package_arn(5)))], aws) == 0
    assert f"prod: {PROD} already serves {package_arn(5)}; left alone" in capsys.readouterr().out


def test_deploy_failures_exit_1_with_the_reason(
    aws: StubbedClients, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFORMATION_ROLE_ARN", "arn:aws:iam::123456789012:role/endpoint-stacks")
    stub_serving(aws.stub("sagemaker"), STAGING, package_arn(3))
    aws.stub("cloudformation").add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "s",
                    "CreationTime": "2025-03-04T00:00:00Z",
                    "StackStatus": "UPDATE_IN_PROGRESS",
                }
            ]
        },
    )
    assert (
        main(["deploy", "--stage", "staging", "--release", str(_release(tmp_path, package_arn(5)))], aws) == 1
    )
    assert (
        "staging: deploy FAILED: review-sentiment-dev-endpoint-staging is UPDATE_IN_PROGRESS"
        in capsys.readouterr().err
    )


def test_deploy_needs_the_cloudformation_role_and_a_release(
    aws: StubbedClients, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deploy", "--stage", "prod", "--release", str(_release(tmp_path, package_arn(5)))], aws) == 2
    assert "$CLOUDFORMATION_ROLE_ARN is not set" in capsys.readouterr().err
    assert main(["deploy", "--stage", "prod", "--release", str(tmp_path / "missing")], aws) == 2
    assert "run `python -m model_deploy render` first" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["deploy", "--stage", "qa", "--release", str(tmp_path)], aws)
    assert usage.value.code == 2


def _answer(body: bytes, accept: str) -> dict[str, Any]:
    return {
        "Body": StreamingBody(io.BytesIO(body), len(body)),
        "ContentType": accept,
        "InvokedProductionVariant": "AllTraffic",
    }


def stub_endpoint_answers(aws: StubbedClients, endpoint: str, *, flip: bool = False) -> None:
    """Six good answers (3 request types x 2 response types), then the 4xx refusal of a malformed request;
    with ``flip``, every review gets the opposite sentiment."""
    runtime = aws.stub("sagemaker-runtime")
    sentiments = [s for s, reviews in UNMISTAKABLE.items() for _ in reviews]
    if flip:
        sentiments = ["negative" if s == "positive" else "positive" for s in sentiments]
    results = [
        {
            "sentiment": s,
            "predicted_label": SENTIMENT_LABELS[s],
            "probabilities": {n: (0.9 if n == s else 0.05) for n in SENTIMENT_LABELS},
        }
        for s in sentiments
    ]
    for _content_type in ("application/json", "application/jsonlines", "text/csv"):
        runtime.add_response("invoke_endpoint", _answer(json.dumps(results).encode(), "application/json"))
        lines = "".join(json.dumps(r) + "\n" for r in results).encode()
        runtime.add_response("invoke_endpoint", _answer(lines, "application/jsonlines"))
    runtime.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message="Received client error (400) from primary",
        http_status_code=424,
        modeled_fields={"OriginalStatusCode": 400, "OriginalMessage": '{"error": "features must be text"}'},
    )


def stub_in_service(aws: StubbedClients, endpoint: str, status: str = "InService") -> None:
    aws.stub("sagemaker").add_response(
        "describe_endpoint",
        {
            "EndpointName": endpoint,
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{endpoint}",
            "EndpointStatus": status,
            "CreationTime": "2025-03-04T00:00:00Z",
            "LastModifiedTime": "2025-03-04T00:00:00Z",
        },
        {"EndpointName": endpoint},
    )


def test_smoke_test_passes_on_an_endpoint_that_answers_right(
    aws: StubbedClients, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_in_service(aws, STAGING)
    stub_endpoint_answers(aws, STAGING)
    report = tmp_path / "report.json"
    assert main(["smoke-test", "--endpoint", STAGING, "--report", str(report)], aws) == 0
    assert f"smoke test of {STAGING} passed: 7 invocations, answered by AllTraffic" in capsys.readouterr().out
    assert json.loads(report.read_text())["Passed"] is True
    aws.assert_no_pending_responses()


def test_smoke_test_fails_with_the_report_when_answers_are_wrong(
    aws: StubbedClients, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_in_service(aws, STAGING)
    stub_endpoint_answers(aws, STAGING, flip=True)
    assert main(["smoke-test", "--endpoint", STAGING], aws) == 1
    captured = capsys.readouterr()
    assert f"smoke test of {STAGING} FAILED: " in captured.out
    assert "is 'negative', not positive" in captured.err


def test_smoke_test_fails_when_the_endpoint_failed(
    aws: StubbedClients, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_in_service(aws, STAGING, status="Failed")
    assert main(["smoke-test", "--endpoint", STAGING], aws) == 1
    assert "the endpoint is not InService" in capsys.readouterr().err


def test_smoke_test_is_skipped_when_nothing_was_approved(
    aws: StubbedClients, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.stub("sagemaker")
    assert main(["smoke-test", "--endpoint", STAGING, "--release", str(_release(tmp_path, None))], aws) == 0
    assert f"smoke test of {STAGING} skipped: test release" in capsys.readouterr().out


def test_the_module_runs_as_a_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "model_deploy", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for command in ("resolve", "render", "deploy", "smoke-test"):
        assert command in result.stdout
