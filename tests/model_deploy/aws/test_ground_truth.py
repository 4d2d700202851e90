"""``python -m model_deploy label start|collect`` (Ground Truth), offline: every AWS call goes through botocore's
Stubber, which checks each parameter against the service model, in order; an unexpected call fails the test.

Output manifest format: https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html (the label under
the label attribute, ``class-name`` in ``<attribute>-metadata``, ``failure-reason`` for an object no one
labeled); input manifest: ``source`` per line (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-text-classification.html).
"""

from __future__ import annotations

import csv
import io
import json
import re

import botocore.session
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY

from model_deploy.aws.ground_truth import (
    LABEL_ATTRIBUTE,
    LABEL_CATEGORIES,
    TEMPLATE,
    builtin_lambda_arn,
)
from model_deploy.cli import main
from pipelines.local.review_queue import EXPORT_COLUMNS, LABEL_SOURCE_COLUMN, ReviewError
from tests.model_deploy.aws.conftest import ACCOUNT, REGION, StubbedClients

KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TEAM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/reviewers"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/review-sentiment-dev-human-review"
OUTPUT = "s3://review-sentiment-dev-artifacts/human-review/labeling"
JOB = "reviews-20250301"
START = [
    "label", "start", "--input", "s3://review-sentiment-dev-data/incoming/unlabeled.jsonl", "--output", OUTPUT,
    "--workteam-arn", TEAM, "--role-arn", ROLE, "--kms-key-arn", KEY, "--job-name", JOB,
    "--workers-per-review", "3",
]  # fmt: skip


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def stub_get(aws: StubbedClients, uri: str, data: bytes) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    aws.stub("s3").add_response("get_object", {"Body": body(data)}, {"Bucket": bucket, "Key": key})


def stub_put(aws: StubbedClients, uri: str, content_type: str) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    aws.stub("s3").add_response(
        "put_object",
        {},
        {
            "Bucket": bucket,
            "Key": key,
            "Body": ANY,
            "ContentType": content_type,
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": KEY,
        },
    )


def test_the_builtin_functions_come_from_botocores_model_for_the_region() -> None:
    pre = builtin_lambda_arn("PreHumanTaskLambdaArn", "PRE-TextMultiClass", REGION)
    acs = builtin_lambda_arn(
        "AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn", "ACS-TextMultiClass", REGION
    )
    assert re.fullmatch(rf"arn:aws:lambda:{REGION}:\d{{12}}:function:PRE-TextMultiClass", pre)
    assert acs.endswith(":function:ACS-TextMultiClass") and acs.split(":")[4] == pre.split(":")[4]
    with pytest.raises(ReviewError, match="no PRE-TextMultiClass function in mars-north-1"):
        builtin_lambda_arn("PreHumanTaskLambdaArn", "PRE-TextMultiClass", "mars-north-1")


def test_label_start_checks_the_input_writes_the_config_and_starts_the_job(
    aws: StubbedClients, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[dict[str, str | int]] = [
        {"source": "Runs small, but lovely."},
        {"source": "Fell apart.", "id": 7},
        {"source": "Fine."},
    ]
    stub_get(aws, START[3], b"\n".join(json.dumps(line).encode() for line in lines) + b"\n")
    config = f"{OUTPUT}/{JOB}/config"
    stub_put(aws, f"{config}/input.manifest", "application/jsonlines")
    stub_put(aws, f"{config}/labels.json", "application/json")
    stub_put(aws, f"{config}/template.liquid", "text/html")
    aws.stub("sagemaker").add_response(
        "create_labeling_job",
        {"LabelingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/{JOB}"},
        {
            "LabelingJobName": JOB,
            "LabelAttributeName": LABEL_ATTRIBUTE,
            "InputConfig": {
                "DataSource": {"S3DataSource": {"ManifestS3Uri": f"{config}/input.manifest"}},
                "DataAttributes": {"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation"]},
            },
            "OutputConfig": {"S3OutputPath": OUTPUT, "KmsKeyId": KEY},
            "RoleArn": ROLE,
            "LabelCategoryConfigS3Uri": f"{config}/labels.json",
            "HumanTaskConfig": ANY,
            "Tags": ANY,
        },
    )
    written: dict[str, bytes] = {}
    aws.client("s3").meta.events.register(
        "before-parameter-build.s3.PutObject",
        lambda params, **_: written.update({params["Key"]: params["Body"]}),
    )
    assert main(START, aws) == 0
    aws.assert_no_pending_responses()
    assert "3 reviews, 3 worker(s) each" in capsys.readouterr().out
    prefix = config.removeprefix("s3://review-sentiment-dev-artifacts/")
    manifest = [json.loads(line) for line in written[f"{prefix}/input.manifest"].decode().splitlines()]
    assert manifest == [{"source": line["source"]} for line in lines]  # the text only, every line
    assert json.loads(written[f"{prefix}/labels.json"]) == LABEL_CATEGORIES
    assert [label["label"] for label in LABEL_CATEGORIES["labels"]] == ["negative", "neutral", "positive"]
    template = written[f"{prefix}/template.liquid"].decode()
    assert template == TEMPLATE and 'name="crowd-classifier"' in template and "task.input.labels" in template


def test_the_labeling_job_request_follows_botocores_model(aws: StubbedClients) -> None:
    """Every parameter of the request, HumanTaskConfig's included, against the API's patterns and limits."""
    from model_deploy.aws.ground_truth import LabelingJobProps, labeling_job_request

    props = LabelingJobProps(JOB, f"{OUTPUT}/{JOB}/config/input.manifest", OUTPUT, TEAM, ROLE, KEY, REGION, 3)
    request = labeling_job_request(props)
    client = aws.client("sagemaker")
    aws.stub("sagemaker").add_response(
        "create_labeling_job",
        {"LabelingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/{JOB}"},
        request,
    )
    client.create_labeling_job(**request)  # the Stubber validates the request against the model
    aws.assert_no_pending_responses()
    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("HumanTaskConfig")
    for name in ("PreHumanTaskLambdaArn", "WorkteamArn"):
        assert re.fullmatch(shape.members[name].metadata["pattern"], request["HumanTaskConfig"][name]), name
    workers = shape.members["NumberOfHumanWorkersPerDataObject"].metadata
    assert workers["min"] <= request["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"] <= workers["max"]
    with pytest.raises(ReviewError, match="--job-name"):
        labeling_job_request(LabelingJobProps("bad_name!", "s3://b/m", OUTPUT, TEAM, ROLE, KEY, REGION))
    with pytest.raises(ReviewError, match="--workers-per-review 9"):
        labeling_job_request(LabelingJobProps(JOB, "s3://b/m", OUTPUT, TEAM, ROLE, KEY, REGION, 9))


def test_label_start_refuses_an_input_with_unreadable_lines_and_starts_nothing(
    aws: StubbedClients, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_get(aws, START[3], b'{"source": "Good."}\nnot json\n{"text": "wrong key"}\n\n{"source": "  "}\n')
    assert main(START, aws) == 2  # no put_object, no create_labeling_job stubbed: none may be made
    aws.assert_no_pending_responses()
    error = capsys.readouterr().err
    assert "3 lines cannot be labeled" in error
    assert "line 2: not JSON" in error and 'line 3: no review text in "source"' in error and "line 5" in error
    assert "nothing was started" in error


def manifest_line(text: str, label: str | None, failure: str | None = None) -> bytes:
    metadata: dict = {"job-name": f"labeling-job/{JOB}", "type": "groundtruth/text-classification"}
    line: dict = {"source": text, f"{LABEL_ATTRIBUTE}-metadata": metadata}
    if label is not None:
        line[LABEL_ATTRIBUTE] = ["negative", "neutral", "positive"].index(label)
        metadata.update({"class-name": label, "confidence": 0.81, "human-annotated": "yes"})
    else:
        metadata["failure-reason"] = failure
    return json.dumps(line).encode() + b"\n"


def stub_describe(
    aws: StubbedClients, status: str, output: str | None = None, failure: str | None = None
) -> None:
    response = {
        "LabelingJobStatus": status,
        "LabelCounters": {},
        "CreationTime": "2025-03-01T00:00:00Z",
        "LastModifiedTime": "2025-03-02T00:00:00Z",
        "JobReferenceCode": "ref",
        "LabelingJobName": JOB,
        "LabelingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/{JOB}",
        "InputConfig": {
            "DataSource": {"S3DataSource": {"ManifestS3Uri": f"{OUTPUT}/{JOB}/config/input.manifest"}}
        },
        "OutputConfig": {"S3OutputPath": OUTPUT},
        "RoleArn": ROLE,
        "HumanTaskConfig": {
            "WorkteamArn": TEAM,
            "UiConfig": {},
            "TaskTitle": "t",
            "TaskDescription": "d",
            "NumberOfHumanWorkersPerDataObject": 1,
            "TaskTimeLimitInSeconds": 600,
        },
    }
    if output:
        response["LabelingJobOutput"] = {"OutputDatasetS3Uri": output}
    if failure:
        response["FailureReason"] = failure
    aws.stub("sagemaker").add_response("describe_labeling_job", response, {"LabelingJobName": JOB})


def test_label_collect_writes_the_labels_as_the_pipelines_input(
    aws: StubbedClients, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = f"{OUTPUT}/{JOB}/manifests/output/output.manifest"
    stub_describe(aws, "Completed", manifest)
    data = (
        manifest_line("Runs small, but lovely.", "positive")
        + manifest_line("Fell apart.", "negative")
        + manifest_line("Meh.", None, "ClientError: task expired")
    )
    stub_get(aws, manifest, data)
    raw = "s3://review-sentiment-dev-data/raw-reviews"
    written: list[bytes] = []
    stub_put(aws, f"{raw}/human-labels/ground-truth-{JOB}.csv", "text/csv")
    aws.client("s3").meta.events.register(
        "before-parameter-build.s3.PutObject", lambda params, **_: written.append(params["Body"])
    )
    assert main(["label", "collect", "--job-name", JOB, "--raw-reviews", raw, "--kms-key-arn", KEY], aws) == 0
    aws.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert "2 labeled reviews written" in out and "line 3: ClientError: task expired" in out
    rows = list(csv.DictReader(io.StringIO(written[0].decode())))
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    assert [(r["Review Text"], r["Rating"]) for r in rows] == [
        ("Runs small, but lovely.", "5"),
        ("Fell apart.", "1"),
    ]
    assert rows[0][LABEL_SOURCE_COLUMN] == f"ground-truth:{JOB}:line-1"


def test_label_collect_refuses_a_job_that_has_not_completed(
    aws: StubbedClients, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_describe(aws, "InProgress")
    raw = "s3://review-sentiment-dev-data/raw-reviews"
    assert main(["label", "collect", "--job-name", JOB, "--raw-reviews", raw, "--kms-key-arn", KEY], aws) == 2
    aws.assert_no_pending_responses()
    assert f"labeling job {JOB} is InProgress; collect it once it has Completed" in capsys.readouterr().err
