"""Human review on AWS (Amazon Augmented AI): the same rule and the same export as the local review queue.

- :data:`TASK_TEMPLATE`: the worker task template (Liquid, with the ``crowd-classifier`` element) that the
  ``AWS::SageMaker::HumanTaskUi`` resource holds: the review, and negative / neutral / positive. Like the local
  page, it does not show the model's answer (reviewers are not anchored on it). Ground Truth's template
  (``model_deploy.aws.ground_truth``) is the same text (:func:`task_template`).
- :func:`flow_definition_request`: ``CreateFlowDefinition`` for a stage (CloudFormation has no flow definition
  resource; the scheduled human-loop job creates it): the private workteam (a setting: the platform's team),
  ``TaskCount`` = the stage's ``human_review.labels_per_item``, output under the stage's prefix, encrypted with
  the project's key, named after a digest of all that (``model_build/steps/review_rule.py``).
- :func:`start_human_loops`: ``StartHumanLoop`` for the candidates the rule picks from the capture window
  (``review_rule.read_captures``, which the local queue and the scheduled job run too), each loop named after
  the capture's inference id (:func:`human_loop_name`), so a second run over the same window starts nothing
  twice.
- :func:`rows_from_output`: a completed loop's ``output.json`` as a row of the pipeline's input (the local
  export's columns, ``Label Source`` naming the loop), majority of the answers as locally;
  ``human-review collect`` writes them under the raw-reviews prefix.

Output format: https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-output-data.html
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from model_deploy.stage_config import STAGES, HumanReviewSettings, load_stage
from pipelines.local.review_queue import (
    EXPORT_COLUMNS,
    LABELS,
    Candidate,
    FillResult,
    Label,
    ReviewError,
    capture_window,
    labeled_row,
    majority,
    read_captures,
    step_library,
)

ANSWER_NAME = "sentiment"
"""The ``crowd-classifier``'s ``name``: the key of each answer in the output's ``answerContent``."""


def task_template(answer_name: str, categories: str) -> str:
    """The worker task template (Liquid, the ``crowd-classifier`` element): the review and the three labels,
    with the instructions; A2I's and Ground Truth's differ only in the answer's name and where the categories
    come from. Like the local page, it does not show the model's answer."""
    return f"""<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-classifier name="{answer_name}" categories="{categories}"
                    header="What is the sentiment of this clothing review?">
    <classification-target>{{{{ task.input.taskObject | escape }}}}</classification-target>
    <full-instructions header="Sentiment">
      <p><strong>positive</strong>: the customer is pleased (ratings 4-5); <strong>neutral</strong>: mixed or
      indifferent (rating 3); <strong>negative</strong>: the customer is unhappy (ratings 1-2).</p>
    </full-instructions>
    <short-instructions>Pick the sentiment the customer expresses, not what you think of the product.</short-instructions>
  </crowd-classifier>
</crowd-form>
"""


TASK_TEMPLATE = task_template(ANSWER_NAME, json.dumps(list(LABELS)).replace('"', "'"))
TASK_TITLE: str = step_library("review_rule").TASK_TITLE
TASK_DESCRIPTION: str = step_library("review_rule").TASK_DESCRIPTION


@dataclass(frozen=True)
class FlowDefinitionProps:
    name: str
    workteam_arn: str
    human_task_ui_arn: str
    role_arn: str
    output_uri: str
    kms_key_arn: str
    settings: HumanReviewSettings


def flow_definition_request(props: FlowDefinitionProps) -> dict[str, Any]:
    """The ``CreateFlowDefinition`` request of a stage's human review (``review_rule.flow_definition_request``:
    the human-loop job creates it from the same function), named ``<props.name>-<digest>``."""
    request: dict[str, Any] = _rule().flow_definition_request(
        props.name,
        props.workteam_arn,
        props.human_task_ui_arn,
        props.role_arn,
        props.output_uri,
        props.kms_key_arn,
        props.settings.labels_per_item,
    )
    return request


def human_loop_name(source_key: str) -> str:
    """The loop name of a candidate (``review_rule.human_loop_name``): the same on every run."""
    return str(_rule().human_loop_name(source_key))


def start_human_loops(client: Any, flow_definition_arn: str, candidates: Iterable[Candidate]) -> Any:
    """``StartHumanLoop`` for each candidate (``review_rule.start_human_loops``); returns the
    ``StartedLoops`` (started, and already started by an earlier run)."""
    return _rule().start_human_loops(client, flow_definition_arn, candidates)


def _rule() -> ModuleType:
    return step_library("review_rule")


def rows_from_output(documents: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Completed loops' ``output.json`` documents as rows of the pipeline's input; a loop whose answers have no
    majority is left out (as a tie stays open locally). An answer that is not a known label is refused, naming
    the loop, rather than dropped."""
    rows = []
    for document in documents:
        if not isinstance(document, dict):
            raise ReviewError(f"a human loop output is a JSON object, not a {type(document).__name__}")
        loop = str(document.get("humanLoopName", "?"))
        content = document.get("inputContent") or {}
        answers = []
        for answer in document.get("humanAnswers") or []:
            label = ((answer.get("answerContent") or {}).get(ANSWER_NAME) or {}).get("label")
            if label not in LABELS:
                raise ReviewError(
                    f"human loop {loop}: answer {label!r} of worker {answer.get('workerId', '?')} is not one of "
                    f"{', '.join(LABELS)}; is the flow definition's task template this module's?"
                )
            answers.append(
                Label(str(answer.get("workerId", "?")), label, str(answer.get("submissionTime", "")))
            )
        winner = majority(answers, 1) if answers else None  # a completed loop has all the answers it gets
        if winner is None or not isinstance(content.get("taskObject"), str):
            continue
        agreed = sum(a.label == winner for a in answers)
        rows.append(
            labeled_row(
                loop,
                content["taskObject"],
                winner,
                None,
                f"a2i:{loop}:{agreed} of {len(answers)} reviewers agreed",
            )
        )
    return rows


# ------------------------------------------------------------------------------------------------- the jobs
def start_from_captures(
    client: Any,
    s3_client: Any,
    flow_definition_arn: str,
    captures_uri: str,
    endpoint: str,
    settings: HumanReviewSettings,
    since: datetime,
    until: datetime,
) -> tuple[Any, FillResult]:
    """The scheduled job: the capture window on S3 -> human loops, by the local queue's rule and reader."""
    reader = capture_window()
    source = reader.S3Captures(captures_uri, s3_client)
    candidates, read = read_captures(source, endpoint, settings, since, until)
    return start_human_loops(client, flow_definition_arn, candidates), read


def collect_outputs(
    s3_client: Any, output_uri: str, raw_reviews_uri: str, kms_key_arn: str
) -> tuple[list[str], list[str]]:
    """Completed loops' ``output.json`` under ``output_uri`` -> one CSV per loop under the raw-reviews prefix
    (``human-labels/<loop>.csv``, KMS-encrypted): the next build pipeline run reads them with the rest. One file
    per loop makes a second collection rewrite the same files, so nothing is counted twice. Returns the files
    written and the outputs that could not be read (each named with why; it stays in S3 for another try)."""
    bucket, _, prefix = output_uri.removeprefix("s3://").partition("/")
    raw_bucket, _, raw_prefix = raw_reviews_uri.removeprefix("s3://").partition("/")
    written: list[str] = []
    problems: list[str] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix.rstrip("/") + "/"
    ):
        for entry in page.get("Contents", []):
            if not entry["Key"].endswith("/output.json"):
                continue
            body = s3_client.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            try:
                rows = rows_from_output([json.loads(body)])
            except (ValueError, ReviewError) as error:
                problems.append(f"s3://{bucket}/{entry['Key']}: {error}")
                continue
            if not rows:
                continue
            handle = io.StringIO()
            writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
            key = f"{raw_prefix.rstrip('/')}/human-labels/{rows[0]['']}.csv"
            s3_client.put_object(
                Bucket=raw_bucket,
                Key=key,
                Body=handle.getvalue().encode("utf-8"),
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=kms_key_arn,
            )
            written.append(f"s3://{raw_bucket}/{key}")
    return written, problems


def add_parser(commands: argparse._SubParsersAction) -> None:
    """``python -m model_deploy human-review start|collect`` on the deploy CLI's subparsers."""
    review = commands.add_parser("human-review", help="send unsure answers to A2I; collect the labels")
    actions = review.add_subparsers(dest="human_review_command", required=True)
    start = actions.add_parser("start", help="start human loops for the capture window's unsure answers")
    start.add_argument("--stage", required=True, choices=STAGES)
    start.add_argument("--endpoint", required=True)
    start.add_argument("--captures", required=True, help="s3://<data bucket>/<capture prefix>/<endpoint>")
    start.add_argument("--flow-definition-arn", required=True)
    start.add_argument("--since", default="1h", help="ISO-8601 or an age (default: 1h)")
    start.add_argument("--until", help="end of the window (default: now)")
    collect = actions.add_parser("collect", help="completed loops -> labeled reviews under the raw prefix")
    collect.add_argument("--output", required=True, help="the flow definition's S3OutputPath")
    collect.add_argument(
        "--raw-reviews", required=True, help="s3:// raw-reviews prefix (the pipeline's input)"
    )
    collect.add_argument("--kms-key-arn", required=True)
    review.set_defaults(run=command)


def command(args: argparse.Namespace, clients: Any) -> int:
    if args.human_review_command == "start":
        reader = capture_window()
        now = datetime.now(UTC)
        since = reader.parse_time(args.since, now)
        until = reader.parse_time(args.until, now) if args.until else now
        started, read = start_from_captures(
            clients("sagemaker-a2i-runtime"),
            clients("s3"),
            args.flow_definition_arn,
            args.captures,
            args.endpoint,
            load_stage(args.stage).human_review,
            since,
            until,
        )
        print(
            f"{args.endpoint}: {read.reviews} answered reviews, {read.candidates} to review; "
            f"{len(started.started)} human loops started, {len(started.already)} started before"
        )
        for problem in read.unreadable:
            print(f"  unreadable: {problem}")
        return 0
    written, problems = collect_outputs(clients("s3"), args.output, args.raw_reviews, args.kms_key_arn)
    print(f"{len(written)} labeled reviews written under {args.raw_reviews.rstrip('/')}/human-labels/")
    for problem in problems:
        print(f"  not collected: {problem}")
    return 1 if problems else 0
