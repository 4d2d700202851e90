"""Human review on AWS, offline: the task UI template (cfn-lint's CloudFormation schema), CreateFlowDefinition and
StartHumanLoop (botocore's service models, through a Stubber), and the conversion of A2I's output into the
pipeline's input (https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-output-data.html)."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import botocore.session
import pytest
from aws_cdk import App, Stack
from botocore.stub import ANY, Stubber
from cfnlint.api import lint
from moto import mock_aws

from infra.constructs.human_review import HumanTaskUi
from model_deploy.aws.human_review import (
    ANSWER_NAME,
    FlowDefinitionProps,
    collect_outputs,
    flow_definition_request,
    human_loop_name,
    rows_from_output,
    start_from_captures,
    start_human_loops,
)
from model_deploy.local.capture import CaptureWriter
from model_deploy.stage_config import MAX_LABELS_PER_ITEM, load_stage
from pipelines.local.review_queue import EXPORT_COLUMNS, LABEL_SOURCE_COLUMN, LABELS, Candidate, ReviewError

REGION = "us-east-1"
ACCOUNT = "123456789012"
FLOW = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/review-sentiment-dev-prod"


def model_member(service: str, operation: str, *path: str) -> object:
    shape = botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape
    for name in path:
        shape = shape.members[name]
    return shape


def test_the_task_ui_is_a_valid_cloudformation_resource_with_the_three_labels() -> None:
    app = App()
    stack = Stack(app, "Review")
    ui = HumanTaskUi(stack, "Ui", name="review-sentiment-dev-prod-sentiment-review")
    template = app.synth().get_stack_by_name("Review").template
    (resource,) = template["Resources"].values()
    assert resource["Type"] == "AWS::SageMaker::HumanTaskUi"
    assert resource["Properties"]["HumanTaskUiName"] == ui.name
    errors = [m for m in lint(json.dumps(template), regions=[REGION]) if m.rule.id.startswith("E")]
    assert errors == [], "\n".join(map(str, errors))
    content = resource["Properties"]["UiTemplate"]["Content"]
    assert f'name="{ANSWER_NAME}"' in content and "{{ task.input.taskObject | escape }}" in content
    assert re.search(r"categories=\"\['negative', 'neutral', 'positive'\]\"", content)
    assert "predicted" not in content and "probability" not in content  # the model's answer is not shown


def test_the_flow_definition_request_follows_the_stage_and_botocores_model() -> None:
    settings = load_stage("prod").human_review
    task_count = model_member("sagemaker", "CreateFlowDefinition", "HumanLoopConfig", "TaskCount")
    assert task_count.metadata["max"] == MAX_LABELS_PER_ITEM  # the stage files' limit is the API's
    props = FlowDefinitionProps(
        name="review-sentiment-dev-prod",
        workteam_arn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/reviewers",
        human_task_ui_arn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-task-ui/review-sentiment-dev-prod-sentiment-review",
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/review-sentiment-dev-human-review",
        output_uri="s3://review-sentiment-dev-artifacts/human-review/prod",
        kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        settings=settings,
    )
    request = flow_definition_request(props)
    assert request["HumanLoopConfig"]["TaskCount"] == settings.labels_per_item
    assert request["OutputConfig"]["KmsKeyId"] == props.kms_key_arn
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response("create_flow_definition", {"FlowDefinitionArn": FLOW}, request)
        assert client.create_flow_definition(**request)["FlowDefinitionArn"] == FLOW
        stub.assert_no_pending_responses()
    config = request["HumanLoopConfig"]
    for name in ("WorkteamArn", "HumanTaskUiArn", "TaskTitle"):
        pattern = model_member("sagemaker", "CreateFlowDefinition", "HumanLoopConfig", name).metadata[
            "pattern"
        ]
        assert re.fullmatch(pattern, config[name]), name


def test_human_loops_are_started_once_per_capture_with_names_the_api_accepts() -> None:
    pattern = model_member("sagemaker-a2i-runtime", "StartHumanLoop", "HumanLoopName").metadata["pattern"]
    keys = [
        "capture:review-sentiment-dev-prod:6f1c0a5e-2b7d-4a53-9a43-0d2a1f9b7c11:0",
        "capture:review-sentiment-dev-prod:6f1c0a5e-2b7d-4a53-9a43-0d2a1f9b7c11:1",
        "capture:" + "X" * 200 + ":0",
    ]
    names = [human_loop_name(key) for key in keys]
    assert len(set(names)) == 3 and names == [human_loop_name(key) for key in keys]
    assert all(re.fullmatch(pattern, name) and len(name) <= 63 for name in names), names

    candidates = [
        Candidate(keys[0], "captures line 1, review 1", "low_confidence", "Runs small.", "shop-prod", 3, "neutral", 0.44),
        Candidate(keys[1], "captures line 1, review 2", "quality_sample", "Love it!", "shop-prod", 3, "positive", 0.97),
    ]  # fmt: skip
    client = boto3.client(
        "sagemaker-a2i-runtime", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        stub.add_response(
            "start_human_loop",
            {"HumanLoopArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-loop/{names[0]}"},
            {
                "HumanLoopName": names[0],
                "FlowDefinitionArn": FLOW,
                "HumanLoopInput": {"InputContent": ANY},
                "DataAttributes": {"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation"]},
            },
        )
        stub.add_client_error("start_human_loop", "ConflictException", "exists", 409)  # a window seen before
        result = start_human_loops(client, FLOW, candidates)
        stub.assert_no_pending_responses()
    assert result.started == [names[0]] and result.already == [names[1]]


def test_completed_loops_become_rows_of_the_pipelines_input() -> None:
    def output(loop: str, text: str, *labels: str) -> dict:
        return {
            "flowDefinitionArn": FLOW,
            "humanLoopName": loop,
            "inputContent": {"taskObject": text, "predicted": "positive"},
            "humanAnswers": [
                {"answerContent": {ANSWER_NAME: {"label": label}}, "workerId": f"w{i}", "submissionTime": "t"}
                for i, label in enumerate(labels)
            ],
        }

    rows = rows_from_output(
        [
            output("loop-a", "Seams came apart.", "negative", "negative", "neutral"),
            output("loop-b", "It is a dress.", "negative", "neutral", "positive"),  # no majority: left out
        ]
    )
    (row,) = rows
    assert list(row) == list(EXPORT_COLUMNS)
    assert (row["Review Text"], row["Rating"]) == ("Seams came apart.", "1")
    assert row[LABEL_SOURCE_COLUMN] == "a2i:loop-a:2 of 3 reviewers agreed"
    with pytest.raises(ReviewError, match="human loop loop-c: answer 'great' of worker w0 is not one of"):
        rows_from_output([output("loop-c", "Meh.", "great")])
    assert set(LABELS) == {"negative", "neutral", "positive"}


def test_the_scheduled_job_reads_the_s3_capture_window_and_collects_labels_under_the_raw_prefix(
    tmp_path: Path,
) -> None:
    name = "review-sentiment-dev-prod"
    writer = CaptureWriter(tmp_path, name, "AllTraffic", 100)
    for text, result in (("Runs small.", ("neutral", 0.45)), ("Love it!", ("positive", 0.99))):
        answer = [{"sentiment": result[0], "probability": result[1]}]
        writer.write(json.dumps({"inputs": text}).encode(), "application/json", json.dumps(answer).encode(), "application/json")  # fmt: skip
    writer.close()
    settings = replace(load_stage("prod").human_review, sample_share=0.0)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="data")
        for path in tmp_path.rglob("*.jsonl"):
            s3.upload_file(str(path), "data", f"data-capture/prod/{path.relative_to(tmp_path).as_posix()}")
        a2i = boto3.client("sagemaker-a2i-runtime", region_name=REGION)
        now = datetime.now(UTC)
        with Stubber(a2i) as stub:
            stub.add_response("start_human_loop", {"HumanLoopArn": f"{FLOW}/loop"}, {
                "HumanLoopName": ANY, "FlowDefinitionArn": FLOW, "HumanLoopInput": ANY, "DataAttributes": ANY,
            })  # fmt: skip
            started, read = start_from_captures(
                a2i, s3, FLOW, f"s3://data/data-capture/prod/{name}", name, settings, now - timedelta(hours=1), now + timedelta(minutes=1)
            )  # fmt: skip
            stub.assert_no_pending_responses()
        assert (read.reviews, read.candidates, len(started.started)) == (2, 1, 1)

        loop = started.started[0]
        output = {
            "humanLoopName": loop,
            "inputContent": {"taskObject": "Runs small."},
            "humanAnswers": [{"answerContent": {ANSWER_NAME: {"label": x}}, "workerId": x} for x in ("neutral", "neutral", "negative")],
        }  # fmt: skip
        s3.put_object(
            Bucket="data",
            Key=f"human-review/prod/2026/12/06/05/00/00/{loop}/output.json",
            Body=json.dumps(output),
        )
        s3.put_object(
            Bucket="data", Key="human-review/prod/2026/12/06/05/00/00/broken/output.json", Body=b"{not json"
        )
        key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        for _ in range(2):  # a second collection rewrites the same file
            written, problems = collect_outputs(
                s3, "s3://data/human-review/prod", "s3://data/reviews/raw/", key
            )
            assert written == [f"s3://data/reviews/raw/human-labels/{loop}.csv"]
            assert len(problems) == 1 and problems[0].startswith(
                "s3://data/human-review/prod/2026/12/06/05/00/00/broken/output.json: "
            )
        stored = s3.get_object(Bucket="data", Key=f"reviews/raw/human-labels/{loop}.csv")
        assert stored["ServerSideEncryption"] == "aws:kms"
        (row,) = csv.DictReader(io.StringIO(stored["Body"].read().decode("utf-8")))
        assert (row["Review Text"], row["Rating"], row[LABEL_SOURCE_COLUMN]) == (
            "Runs small.",
            "3",
            f"a2i:{loop}:2 of 3 reviewers agreed",
        )
        assert len(s3.list_objects_v2(Bucket="data", Prefix="reviews/raw/")["Contents"]) == 1
