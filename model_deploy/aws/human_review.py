"""Human review on AWS (Amazon Augmented AI): the same rule and the same export as the local review queue.

- :data:`TASK_TEMPLATE`: the worker task template (Liquid, with the ``crowd-classifier`` element) that the
  ``AWS::SageMaker::HumanTaskUi`` resource holds: the review, and negative / neutral / positive. Like the local
  page, it does not show the model's answer (reviewers are not anchored on it).
- :func:`flow_definition_request`: ``CreateFlowDefinition`` for a stage (CloudFormation has no flow definition
  resource): the private workteam (a setting: the platform's team), ``TaskCount`` = the stage's
  ``human_review.labels_per_item``, output under the stage's prefix, encrypted with the project's key.
- :func:`start_human_loops`: ``StartHumanLoop`` for the queue's candidates (read from the capture window with
  :func:`pipelines.local.review_queue.read_captures`, the same rule as locally), each loop named after the
  capture's inference id (:func:`human_loop_name`), so a second run over the same window starts nothing twice.
- :func:`rows_from_output`: a completed loop's ``output.json`` as a row of the pipeline's input (the local
  export's columns, ``Label Source`` naming the loop), majority of the answers as locally.

Output format: https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-output-data.html
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from model_deploy.stage_config import HumanReviewSettings
from pipelines.local.review_queue import LABELS, Candidate, Label, ReviewError, labeled_row, majority

ANSWER_NAME = "sentiment"
"""The ``crowd-classifier``'s ``name``: the key of each answer in the output's ``answerContent``."""
TASK_TEMPLATE = f"""<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-classifier name="{ANSWER_NAME}" categories="{json.dumps(list(LABELS)).replace('"', "'")}"
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
TASK_TITLE = "Sentiment of a clothing review"
TASK_DESCRIPTION = "Read one customer review and choose whether it is negative, neutral or positive."
_LOOP_NAME_SAFE = re.compile(r"[^a-z0-9]+")


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
    """The ``CreateFlowDefinition`` request of a stage's human review."""
    return {
        "FlowDefinitionName": props.name,
        "HumanLoopConfig": {
            "WorkteamArn": props.workteam_arn,
            "HumanTaskUiArn": props.human_task_ui_arn,
            "TaskTitle": TASK_TITLE,
            "TaskDescription": TASK_DESCRIPTION,
            "TaskCount": props.settings.labels_per_item,
            "TaskAvailabilityLifetimeInSeconds": 7 * 24 * 3600,
            "TaskTimeLimitInSeconds": 600,
            "TaskKeywords": ["sentiment", "text classification", "reviews"],
        },
        "OutputConfig": {"S3OutputPath": props.output_uri, "KmsKeyId": props.kms_key_arn},
        "RoleArn": props.role_arn,
    }


def human_loop_name(source_key: str) -> str:
    """A loop name derived from the candidate's key (endpoint, inference id, review index): lower-case letters,
    digits and single hyphens, at most 63 characters (the API's pattern), and the same on every run."""
    digest = hashlib.sha256(source_key.encode("utf-8")).hexdigest()[:16]
    readable = _LOOP_NAME_SAFE.sub("-", source_key.lower()).strip("-")[: 63 - len(digest) - 1].strip("-")
    return f"{readable}-{digest}" if readable else digest


@dataclass
class StartedLoops:
    started: list[str]
    already: list[str]
    """Loops that existed (a run over a window already seen): ``ConflictException``, nothing new started."""


def start_human_loops(client: Any, flow_definition_arn: str, candidates: Iterable[Candidate]) -> StartedLoops:
    """``StartHumanLoop`` for each candidate, with its text as ``taskObject`` and the model's answer kept in the
    input (for the export and the accuracy per version; the task template does not show it)."""
    result = StartedLoops([], [])
    for candidate in candidates:
        name = human_loop_name(candidate.source_key)
        content = {
            "taskObject": candidate.text,
            "sourceKey": candidate.source_key,
            "source": candidate.source,
            "reason": candidate.reason,
            "endpoint": candidate.endpoint,
            "version": candidate.version,
            "predicted": candidate.predicted,
            "probability": candidate.probability,
        }
        try:
            client.start_human_loop(
                HumanLoopName=name,
                FlowDefinitionArn=flow_definition_arn,
                HumanLoopInput={"InputContent": json.dumps(content)},
                DataAttributes={"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation"]},
            )
        except client.exceptions.ConflictException:
            result.already.append(name)
            continue
        result.started.append(name)
    return result


def rows_from_output(documents: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Completed loops' ``output.json`` documents as rows of the pipeline's input; a loop whose answers have no
    majority is left out (as a tie stays open locally). An answer that is not a known label is refused, naming
    the loop, rather than dropped."""
    rows = []
    for document in documents:
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
