"""``run --sagemaker`` and ``definition`` against moto (S3/STS) and a stubbed SageMaker client."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from model_build.config import load_config
from model_build.data_fingerprint import fingerprint
from model_build.pipeline_spec import PIPELINE
from model_build.step_roles import step_roles
from pipelines.runners import sagemaker as sagemaker_runner

ROLE_ARN = "arn:aws:iam::123456789012:role/test-execution"
ARTIFACT_BUCKET = "test-artifacts"
PIPELINE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/review-sentiment-dev-build"
EXECUTION_ARN = f"{PIPELINE_ARN}/execution/abc123"
PROD_ENDPOINT = load_config().endpoint_name("prod")
GROUP = load_config().model_package_group_name
LIST_APPROVED = {
    "ModelPackageGroupName": GROUP,
    "ModelApprovalStatus": "Approved",
    "ModelPackageType": "Versioned",
}
PACKAGE = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    monkeypatch.setenv("SAGEMAKER_PIPELINE_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("ARTIFACT_BUCKET", ARTIFACT_BUCKET)
    monkeypatch.setenv("DATA_BUCKET", "test-data")
    monkeypatch.delenv("MLOPS_PROJECT_NAME", raising=False)
    monkeypatch.delenv("MLOPS_ENVIRONMENT", raising=False)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=ARTIFACT_BUCKET)
        yield session


@pytest.fixture
def sagemaker(aws: boto3.Session) -> Iterator[tuple[object, Stubber]]:
    client = aws.client("sagemaker")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_upsert_and_start(stubber: Stubber, parameters: list[dict[str, str]] | None) -> None:
    stubber.add_response(
        "create_pipeline",
        {"PipelineArn": PIPELINE_ARN},
        {
            "PipelineName": load_config().pipeline_name,
            "RoleArn": ROLE_ARN,
            "PipelineDefinition": ANY,
            "PipelineDescription": PIPELINE.description,
        },
    )
    expect_no_champion(stubber)
    expect_start(stubber, parameters or [])


def expect_start(
    stubber: Stubber, given: Sequence[dict[str, str]], after: Sequence[dict[str, str]] = ()
) -> None:
    """The start, with the ``given`` parameters, then the digest of the input data the runner adds (see
    test_the_start_carries_the_input_datas_fingerprint), then ``after`` (the champion, when there is one)."""
    fingerprint = {"Name": "InputDataFingerprint", "Value": ANY}
    start = {"PipelineName": load_config().pipeline_name, "PipelineParameters": [*given, fingerprint, *after]}
    stubber.add_response("start_pipeline_execution", {"PipelineExecutionArn": EXECUTION_ARN}, start)


def expect_no_champion(stubber: Stubber) -> None:
    """No prod endpoint, no approved version: the champion lookup the runner does before it starts."""
    expect_no_prod_endpoint(stubber)
    stubber.add_response("list_model_packages", {"ModelPackageSummaryList": []}, LIST_APPROVED)


def expect_no_prod_endpoint(stubber: Stubber) -> None:
    stubber.add_client_error(
        "describe_endpoint",
        service_error_code="ValidationException",
        service_message=f"Could not find endpoint {PROD_ENDPOINT}.",
        expected_params={"EndpointName": PROD_ENDPOINT},
    )


def expect_package(stubber: Stubber, arn: str, url: str) -> None:
    stubber.add_response(
        "describe_model_package",
        {
            "ModelPackageName": "g",
            "ModelPackageArn": arn,
            "CreationTime": datetime(2026, 1, 1),
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "InferenceSpecification": {
                "Containers": [{"Image": "img", "ModelDataUrl": url}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        },
        {"ModelPackageName": arn},
    )


def step(name: str, status: str, reason: str | None = None) -> dict[str, str]:
    entry = {"StepName": name, "StepStatus": status}
    if reason:
        entry["FailureReason"] = reason
    return entry


def expect_poll(
    stubber: Stubber, steps: list[dict[str, str]], status: str, reason: str | None = None
) -> None:
    stubber.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": steps},
        {"PipelineExecutionArn": EXECUTION_ARN},
    )
    description = {"PipelineExecutionArn": EXECUTION_ARN, "PipelineExecutionStatus": status}
    if reason:
        description["FailureReason"] = reason
    stubber.add_response("describe_pipeline_execution", description, {"PipelineExecutionArn": EXECUTION_ARN})


def test_run_upserts_with_the_role_starts_with_the_overrides_and_prints_the_arn(aws, sagemaker, capsys):
    client, stubber = sagemaker
    expect_upsert_and_start(stubber, [{"Name": "Epochs", "Value": "1"}])
    code = sagemaker_runner.run_on_sagemaker(
        {"Epochs": "1"}, wait=False, boto_session=aws, sagemaker_client=client
    )
    assert code == 0
    assert EXECUTION_ARN in capsys.readouterr().out


def test_a_tuning_run_upserts_a_definition_that_tunes(aws, sagemaker):
    """TuningMaxJobs decides the step's kind: passed at the start alone, it would be ignored."""
    client, stubber = sagemaker
    expect_upsert_and_start(stubber, [{"Name": "TuningMaxJobs", "Value": "8"}])
    upserted: list[str] = []
    original = client.create_pipeline

    def create_pipeline(**request):
        upserted.append(request["PipelineDefinition"])
        return original(**request)

    client.create_pipeline = create_pipeline  # type: ignore[method-assign]
    code = sagemaker_runner.run_on_sagemaker(
        {"TuningMaxJobs": "8"}, wait=False, boto_session=aws, sagemaker_client=client
    )
    assert code == 0
    definition = json.loads(upserted[0])
    train = next(step for step in definition["Steps"] if step["Name"] == "TrainModel")
    assert train["Type"] == "Tuning"
    limits = train["Arguments"]["HyperParameterTuningJobConfig"]["ResourceLimits"]
    assert limits["MaxNumberOfTrainingJobs"] == 8


def test_run_updates_an_existing_pipeline(aws, sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error(
        "create_pipeline",
        service_error_code="ResourceInUse",
        service_message=f"Pipeline {load_config().pipeline_name} already exists.",
    )
    stubber.add_response(
        "update_pipeline",
        {"PipelineArn": PIPELINE_ARN},
        {
            "PipelineName": load_config().pipeline_name,
            "RoleArn": ROLE_ARN,
            "PipelineDefinition": ANY,
            "PipelineDescription": PIPELINE.description,
        },
    )
    expect_no_champion(stubber)
    expect_start(stubber, [])
    assert sagemaker_runner.run_on_sagemaker({}, wait=False, boto_session=aws, sagemaker_client=client) == 0


def test_the_start_names_the_version_prod_serves_as_the_champion(aws, sagemaker, capsys):
    client, stubber = sagemaker
    stubber.add_response(
        "create_pipeline",
        {"PipelineArn": PIPELINE_ARN},
        {"PipelineName": ANY, "RoleArn": ANY, "PipelineDefinition": ANY, "PipelineDescription": ANY},
    )
    stubber.add_response(
        "describe_endpoint",
        {
            "EndpointName": PROD_ENDPOINT,
            "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/x",
            "EndpointConfigName": "config-3",
            "EndpointStatus": "InService",
            "CreationTime": datetime(2026, 1, 1),
            "LastModifiedTime": datetime(2026, 1, 1),
        },
        {"EndpointName": PROD_ENDPOINT},
    )
    stubber.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": "config-3",
            "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/config-3",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "model-3"}],
            "CreationTime": datetime(2026, 1, 1),
        },
        {"EndpointConfigName": "config-3"},
    )
    stubber.add_response(
        "describe_model",
        {
            "ModelName": "model-3",
            "PrimaryContainer": {"ModelPackageName": f"{PACKAGE}3"},
            "CreationTime": datetime(2026, 1, 1),
            "ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/model-3",
        },
        {"ModelName": "model-3"},
    )
    url = "s3://test-artifacts/build/models/job-3/output/model.tar.gz"
    expect_package(stubber, f"{PACKAGE}3", url)
    champion = [
        {"Name": "ChampionModelPackageArn", "Value": f"{PACKAGE}3"},
        {"Name": "ChampionModelUrl", "Value": url},
    ]
    expect_start(stubber, [], champion)
    assert sagemaker_runner.run_on_sagemaker({}, wait=False, boto_session=aws, sagemaker_client=client) == 0
    assert f"Champion: {PACKAGE}3 (served by {PROD_ENDPOINT}), model {url}" in capsys.readouterr().out


def test_without_prod_the_newest_approved_version_is_the_champion_and_none_means_none(aws, sagemaker):
    client, stubber = sagemaker
    expect_no_prod_endpoint(stubber)
    summaries = [
        {
            "ModelPackageArn": f"{PACKAGE}{version}",
            "ModelPackageVersion": version,
            "ModelPackageGroupName": GROUP,
            "CreationTime": datetime(2026, 1, version),
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": "Approved",
        }
        for version in (1, 2)
    ]
    stubber.add_response("list_model_packages", {"ModelPackageSummaryList": summaries}, LIST_APPROVED)
    expect_package(stubber, f"{PACKAGE}2", "s3://b/2/model.tar.gz")
    config = load_config()
    lines: list[str] = []
    found = sagemaker_runner.with_champion({"Epochs": "1"}, client, config, lines.append)
    assert found == {
        "Epochs": "1",
        "ChampionModelPackageArn": f"{PACKAGE}2",
        "ChampionModelUrl": "s3://b/2/model.tar.gz",
    }
    assert "the newest Approved version" in lines[0]
    # None on purpose, or a version and its model both given: nothing to look up.
    none = sagemaker_runner.with_champion({"ChampionModelPackageArn": "none"}, client, config, lines.append)
    assert none == {"ChampionModelPackageArn": "none", "ChampionModelUrl": ""}
    given = {"ChampionModelPackageArn": f"{PACKAGE}1", "ChampionModelUrl": "s3://b/1/model.tar.gz"}
    assert sagemaker_runner.with_champion(given, client, config, lines.append) == given
    model_only = {"ChampionModelUrl": "s3://b/elsewhere/model.tar.gz"}
    assert sagemaker_runner.with_champion(model_only, client, config, lines.append) == model_only


def test_a_champion_that_cannot_be_looked_up_stops_the_start_and_says_what_to_do(aws, sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error(
        "describe_endpoint", service_error_code="AccessDeniedException", service_message="not authorized"
    )
    with pytest.raises(
        ValueError, match=r"cannot find the champion .*not authorized.*ChampionModelPackageArn=none"
    ):
        sagemaker_runner.with_champion({}, client, load_config(), lambda _: None)


def test_waiting_prints_step_changes_and_a_failed_execution_exits_non_zero(aws, sagemaker, capsys):
    client, stubber = sagemaker
    expect_upsert_and_start(stubber, None)
    expect_poll(stubber, [step("ProcessReviews", "Executing")], "Executing")
    expect_poll(
        stubber,
        [
            step("FailOnLowAccuracy", "Failed", "Test accuracy 0.41 is below MinAccuracy 0.5"),
            step("CheckAccuracy", "Succeeded"),
            step("ProcessReviews", "Succeeded"),
        ],
        "Failed",
        "Step failure: One or multiple steps failed.",
    )
    sleeps: list[float] = []
    code = sagemaker_runner.run_on_sagemaker(
        {}, wait=True, boto_session=aws, sagemaker_client=client, poll_seconds=7, sleep=sleeps.append
    )
    out = capsys.readouterr().out
    assert code == 1
    assert sleeps == [7]
    assert out.count("ProcessReviews: Executing") == 1
    assert "ProcessReviews: Succeeded" in out
    assert "FailOnLowAccuracy: Failed: Test accuracy 0.41 is below MinAccuracy 0.5" in out
    assert "Execution Failed: Step failure" in out


def test_waiting_shows_retried_attempts_and_cache_hits() -> None:
    source = f"{PIPELINE_ARN}/execution/earlier"
    polls = iter(
        [
            [
                {"StepName": "TrainModel", "StepStatus": "Executing", "AttemptCount": 2},
                {
                    "StepName": "ProcessReviews",
                    "StepStatus": "Succeeded",
                    "CacheHitResult": {"SourcePipelineExecutionArn": source},
                },
            ],
            [{"StepName": "TrainModel", "StepStatus": "Succeeded", "AttemptCount": 2}],
        ]
    )
    statuses = iter(["Executing", "Succeeded"])

    class Client:
        def list_pipeline_execution_steps(self, **_: object) -> dict[str, object]:
            return {"PipelineExecutionSteps": next(polls)}

        def describe_pipeline_execution(self, **_: object) -> dict[str, object]:
            return {"PipelineExecutionStatus": next(statuses)}

    lines: list[str] = []
    status = sagemaker_runner.wait_for_execution(
        Client(), EXECUTION_ARN, sleep=lambda _: None, out=lines.append
    )
    assert status == "Succeeded"
    assert lines == [
        f"  ProcessReviews: Succeeded (cache hit: outputs of {source})",
        "  TrainModel: Executing (attempt 2)",
        "  TrainModel: Succeeded (attempt 2)",
        "Execution Succeeded",
    ]


def test_waiting_for_a_successful_execution_exits_zero(aws, sagemaker):
    client, stubber = sagemaker
    expect_upsert_and_start(stubber, None)
    expect_poll(stubber, [step("RegisterModel", "Succeeded")], "Succeeded")
    code = sagemaker_runner.run_on_sagemaker(
        {}, wait=True, boto_session=aws, sagemaker_client=client, sleep=lambda _: None
    )
    assert code == 0


def test_a_stopped_execution_exits_non_zero(aws, sagemaker):
    client, stubber = sagemaker
    expect_upsert_and_start(stubber, None)
    expect_poll(stubber, [], "Stopped")
    code = sagemaker_runner.run_on_sagemaker(
        {}, wait=True, boto_session=aws, sagemaker_client=client, sleep=lambda _: None
    )
    assert code == 1


def test_run_without_the_role_names_the_variable_and_calls_nothing(aws, sagemaker, monkeypatch):
    client, _ = sagemaker
    monkeypatch.delenv("SAGEMAKER_PIPELINE_ROLE_ARN")
    with pytest.raises(ValueError, match="SAGEMAKER_PIPELINE_ROLE_ARN is not set"):
        sagemaker_runner.run_on_sagemaker({}, wait=False, boto_session=aws, sagemaker_client=client)


def test_run_rejects_an_unknown_parameter_before_calling_aws(aws, sagemaker):
    client, _ = sagemaker
    with pytest.raises(KeyError, match="NoSuchParameter"):
        sagemaker_runner.run_on_sagemaker(
            {"NoSuchParameter": "1"}, wait=False, boto_session=aws, sagemaker_client=client
        )


def test_the_start_carries_the_input_datas_fingerprint(aws, sagemaker, capsys):
    """New reviews under the same InputDataUrl change the start's parameters, so processing is not reused."""
    client, stubber = sagemaker
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="test-data")
    raw = f"{load_config().raw_reviews_prefix.strip('/')}/"
    s3.put_object(Bucket="test-data", Key=f"{raw}reviews.csv", Body=b"Review Text,Rating\nnice,5\n")
    expected = fingerprint(s3, f"s3://test-data/{raw}")
    expect_upsert_and_start(stubber, None)
    sagemaker_runner.run_on_sagemaker({}, wait=False, boto_session=aws, sagemaker_client=client)
    assert f"InputDataFingerprint={expected}" in capsys.readouterr().out

    # The pipeline exists now: the start alone is checked, with the digest of the changed data.
    s3.put_object(Bucket="test-data", Key=f"{raw}more.csv", Body=b"Review Text,Rating\nbad,1\n")
    changed = fingerprint(s3, f"s3://test-data/{raw}")
    assert changed != expected
    params = sagemaker_runner.with_input_fingerprints(
        sagemaker_runner._build({}, True, aws)[0], {"Epochs": "2"}, s3, out=lambda _: None
    )
    assert params == {"Epochs": "2", "InputDataFingerprint": changed}


def test_an_input_that_cannot_be_listed_gets_a_fingerprint_of_its_own(aws, capsys):
    pipeline, _ = sagemaker_runner._build({}, True, aws)
    s3 = aws.client("s3")
    lines: list[str] = []
    first = sagemaker_runner.with_input_fingerprints(
        pipeline, {"InputDataUrl": "s3://no-such-bucket/raw/"}, s3, lines.append
    )
    second = sagemaker_runner.with_input_fingerprints(
        pipeline, {"InputDataUrl": "s3://no-such-bucket/raw/"}, s3, lines.append
    )
    assert first["InputDataFingerprint"].startswith("unlisted-")
    assert first["InputDataFingerprint"] != second["InputDataFingerprint"]
    assert "Could not list InputDataUrl s3://no-such-bucket/raw/" in lines[0]
    given = sagemaker_runner.with_input_fingerprints(
        pipeline, {"InputDataFingerprint": "mine"}, s3, lines.append
    )
    assert given == {"InputDataFingerprint": "mine"}


def test_run_rejects_an_instance_type_its_steps_image_cannot_run_on_before_calling_aws(aws, sagemaker):
    client, _ = sagemaker
    with pytest.raises(ValueError, match=r"TrainingInstanceType=ml\.c5\.4xlarge is a CPU instance"):
        sagemaker_runner.run_on_sagemaker(
            {"TrainingInstanceType": "ml.c5.4xlarge"}, wait=False, boto_session=aws, sagemaker_client=client
        )


def test_definition_applies_overrides_as_defaults_without_a_role(aws, monkeypatch):
    monkeypatch.delenv("SAGEMAKER_PIPELINE_ROLE_ARN")
    definition = json.loads(
        sagemaker_runner.definition_json({"Epochs": "1", "BalanceDataset": "false"}, boto_session=aws)
    )
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    assert defaults["Epochs"] == 1
    assert defaults["BalanceDataset"] is False
    # Without SAGEMAKER_PIPELINE_ROLE_ARN the jobs name the roles CDK creates for their steps (account from STS).
    roles = {s["Name"]: s["Arguments"]["RoleArn"] for s in definition["Steps"] if "RoleArn" in s["Arguments"]}
    assert roles == {
        step.step: f"arn:aws:iam::123456789012:role/{step.role_name}" for step in step_roles(load_config())
    }


def test_the_registered_version_lists_every_stages_instance_type_in_a_request_the_api_accepts(aws):
    """The stage files are the one source of the instance types a version serves on: the definition the runner
    builds registers each of them, and its RegisterModel step is still a CreateModelPackage request that
    botocore's service model accepts."""
    from model_deploy.stage_config import load_stages
    from tests.model_build.test_definition_request_shapes import request_problems

    definition = json.loads(sagemaker_runner.definition_json({}, boto_session=aws))
    top = definition["Steps"]
    branches = [inner for s in top for b in ("IfSteps", "ElseSteps") for inner in s["Arguments"].get(b, [])]
    (register,) = [s for s in top + branches if s["Type"] == "RegisterModel"]
    listed = register["Arguments"]["InferenceSpecification"]["SupportedRealtimeInferenceInstanceTypes"]
    assert listed[0] == {"Get": "Parameters.DeployInstanceType"}
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    served = {stage.endpoint.instance_type for stage in load_stages().values()}
    assert {defaults["DeployInstanceType"], *listed[1:]} == served | {defaults["DeployInstanceType"]}
    assert "ml.m5.xlarge" in listed[1:], "prod serves ml.m5.xlarge (model_deploy/stages/prod.json)"
    assert request_problems(register, defaults) == []


def test_a_stage_instance_type_the_serving_image_cannot_run_is_refused_before_calling_aws(aws, monkeypatch):
    """A GPU stage with the CPU image DeployInstanceType picks: the definition is not built, and the message
    names the instance type, the parameter and what to change."""
    monkeypatch.setattr(sagemaker_runner, "stage_instance_types", lambda: ("ml.m5.large", "ml.g5.xlarge"))
    with pytest.raises(
        ValueError, match=r"a deploy stage serves on ml\.g5\.xlarge.*DeployInstanceType=ml\.m5\.large"
    ):
        sagemaker_runner.definition_json({}, boto_session=aws)
