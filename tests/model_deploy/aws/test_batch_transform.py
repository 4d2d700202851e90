"""The Batch Transform requests, built offline and asserted; the ``transform`` command against a Stubber.

The Stubber checks each request against botocore's SageMaker service model, so a field SageMaker would
refuse (a wrong name, a value out of its enum or range) fails here rather than in an AWS account.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from botocore.stub import ANY

from model_build import pipeline_spec as ps
from model_build.config import load_config
from model_deploy.aws import batch_transform as bt
from model_deploy.cli import main
from tests.model_deploy.aws.conftest import ACCOUNT, GROUP, REGION, StubbedClients, package_arn, summary

ROLE = f"arn:aws:iam::{ACCOUNT}:role/review-sentiment-dev-batch"
LIST_PARAMS = {
    "ModelPackageGroupName": GROUP,
    "ModelApprovalStatus": "Approved",
    "ModelPackageType": "Versioned",
}
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/6f1c3f0e-2b7a-4d7e-9d5c-1a2b3c4d5e6f"


def plan(**overrides) -> bt.TransformPlan:
    return bt.TransformPlan(
        **{
            "model_package_arn": package_arn(4),
            "input_uri": "s3://data/reviews/batch/in/",
            "output_uri": "s3://data/reviews/batch/out/",
            "role_arn": ROLE,
            **overrides,
        }
    )


def test_the_transform_job_request_splits_by_line_batches_records_and_joins_ids():
    request = bt.create_transform_job_request(plan(kms_key_arn=KMS_KEY), "job-1", load_config())
    assert request["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/reviews/batch/in/"}},
        "ContentType": "application/jsonlines",
        "CompressionType": "None",
        "SplitType": "Line",
    }
    assert request["BatchStrategy"] == "MultiRecord"
    assert request["MaxPayloadInMB"] == 1
    assert request["TransformOutput"] == {
        "S3OutputPath": "s3://data/reviews/batch/out/",
        "Accept": "application/jsonlines",
        "AssembleWith": "Line",
        "KmsKeyId": KMS_KEY,
    }
    assert request["TransformResources"] == {
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": 1,
        "VolumeKmsKeyId": KMS_KEY,
    }
    assert request["DataProcessing"] == {
        "InputFilter": "$.features",
        "JoinSource": "Input",
        "OutputFilter": "$['review_id','SageMakerOutput']",
    }
    assert request["ModelName"] == request["TransformJobName"] == "job-1"
    assert request["ModelClientConfig"]["InvocationsTimeoutInSeconds"] == 3600


def test_the_model_is_the_package_with_the_endpoints_handler_and_content_types():
    register = ps.PIPELINE.step(ps.REGISTER)
    assert isinstance(register, ps.RegisterStep)
    # The registered version declares what the transform sends and asks for: one model serves both ways.
    assert bt.CONTENT_TYPE in register.content_types and bt.ACCEPT in register.response_types
    request = bt.create_model_request(plan(), "job-1", load_config())
    container = request["PrimaryContainer"]
    assert container["ModelPackageName"] == package_arn(4)  # image, model.tar.gz and code/inference.py
    environment = container["Environment"]
    # A 1 MB payload of the shortest lines must not be refused for its count, nor batched by the server.
    assert int(environment["MAX_REVIEWS_PER_REQUEST"]) * bt.SHORTEST_LINE_BYTES >= 1024 * 1024
    assert environment["SAGEMAKER_TS_BATCH_SIZE"] == "1"
    assert int(environment["SAGEMAKER_TS_RESPONSE_TIMEOUT"]) >= bt.INVOCATION_TIMEOUT_SECONDS
    assert request["ExecutionRoleArn"] == ROLE


def test_a_line_the_transform_sends_is_one_review_to_the_handler(monkeypatch):
    """What SageMaker sends after the InputFilter: one JSON string per line; the handler reads each, and
    with the transform's MAX_REVIEWS_PER_REQUEST a full payload is not refused for its count."""
    from model_deploy.serving import inference

    monkeypatch.setattr(
        inference, "MAX_REVIEWS_PER_REQUEST", int(bt.transform_environment()["MAX_REVIEWS_PER_REQUEST"])
    )
    monkeypatch.setattr(inference, "SERVER_BATCHING", False)
    reviews = [f"review {n}, with a comma" for n in range(30_000)]
    body = "".join(json.dumps(review) + "\n" for review in reviews)
    assert len(body.encode()) < bt.MAX_PAYLOAD_MB * 1024 * 1024
    assert inference.input_fn(body, bt.CONTENT_TYPE) == reviews


def test_a_bad_plan_is_refused_before_anything_is_created():
    with pytest.raises(ValueError, match="input_uri 'reviews/' is not an s3:// URI"):
        bt.create_transform_job_request(plan(input_uri="reviews/"), "job", load_config())
    with pytest.raises(ValueError, match="id field 'id field'"):
        bt.create_transform_job_request(plan(id_field="id field"), "job", load_config())


def test_job_names_fit_sagemakers_limit():
    assert bt.job_name(load_config(), 12, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == (
        "review-sentiment-dev-batch-v12-20260102-030405"
    )


def test_transform_command_runs_the_newest_approved_version(aws: StubbedClients, capsys):
    sagemaker = aws.stub("sagemaker")
    sagemaker.add_response(
        "list_model_packages", {"ModelPackageSummaryList": [summary(3), summary(4)]}, LIST_PARAMS
    )
    sagemaker.add_response(
        "create_model",
        {"ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/m"},
        {
            "ModelName": ANY,
            "PrimaryContainer": {
                "ModelPackageName": package_arn(4),
                "Environment": bt.transform_environment(),
            },
            "ExecutionRoleArn": ROLE,
            "Tags": ANY,
        },
    )
    expected = bt.create_transform_job_request(plan(), "NAME", load_config())
    sagemaker.add_response(
        "create_transform_job",
        {"TransformJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:transform-job/j"},
        {**expected, "TransformJobName": ANY, "ModelName": ANY},
    )
    argv = ["transform", "--input", "s3://data/reviews/batch/in/", "--output", "s3://data/reviews/batch/out/"]
    assert main([*argv, "--role-arn", ROLE], aws) == 0
    out = capsys.readouterr().out
    assert "Started batch transform" in out and "version 4" in out
    aws.assert_no_pending_responses()


def test_transform_of_a_version_that_is_not_approved_is_refused(aws: StubbedClients, capsys):
    aws.stub("sagemaker").add_response(
        "list_model_packages", {"ModelPackageSummaryList": [summary(3)]}, LIST_PARAMS
    )
    argv = [
        "transform",
        "--input",
        "s3://a/in/",
        "--output",
        "s3://a/out/",
        "--role-arn",
        ROLE,
        "--version",
        "5",
    ]
    assert main(argv, aws) == 2
    assert f"{GROUP} has no approved version 5: approve one first" in capsys.readouterr().err
    aws.assert_no_pending_responses()
