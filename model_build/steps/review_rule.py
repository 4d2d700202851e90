"""Which captured answers go to people, and how they are sent to Amazon A2I: one rule for both runners.

A step library (standard library only, siblings imported as top-level modules, as in the processing
container). The local review queue (``pipelines review fill``) and the scheduled human-loop job on AWS
(``human_loops.py``, run from the version's monitoring baseline like ``monitor.py``) both call
:func:`read_captures`, so a review goes to people locally exactly when it would on AWS:

- every answered review whose top probability is below ``confidence_threshold``;
- of the confident ones, a ``sample_share`` as a quality check, drawn from a hash of the review's key
  (:func:`sampled`), not at random, so that reading the same window again decides the same way.

On AWS each candidate becomes a human loop named after its key (:func:`human_loop_name`), so a second run over
the same window starts nothing twice (``StartHumanLoop`` answers ``ConflictException`` for a name that exists).
The flow definition the loops run in is created by the job itself when it does not exist yet
(:func:`ensure_flow_definition`), named after a digest of its request: the deploy pipeline renders the request
with the stage's settings, so a change of them (``labels_per_item``, the workteam) makes a new flow definition
instead of failing on the old one (flow definitions cannot be updated).

API references: StartHumanLoop and its name pattern, CreateFlowDefinition
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateFlowDefinition.html); both are checked
against botocore's models in tests.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any

import capture_window
import features

LABELS: tuple[str, ...] = tuple(features.SENTIMENT_NAMES[s] for s in sorted(features.SENTIMENT_NAMES))
"""What a reviewer may answer: the model's sentiments, in order (negative, neutral, positive)."""
TASK_TITLE = "Sentiment of a clothing review"
TASK_DESCRIPTION = "Read one customer review and choose whether it is negative, neutral or positive."
_LOOP_NAME_SAFE = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Candidate:
    """A review that may go to people; ``source_key`` decides whether it already did."""

    source_key: str
    source: str
    reason: str
    text: str
    endpoint: str | None = None
    version: int | None = None
    predicted: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] | None = None
    row: dict[str, str] | None = None


@dataclass
class FillResult:
    """What one read of the captures found; ``unreadable`` names each capture line it could not use."""

    lines: int = 0
    reviews: int = 0
    candidates: int = 0
    added: int = 0
    unreadable: list[str] = field(default_factory=list)


def sampled(source_key: str, share: float) -> bool:
    """Whether a confident answer is in the quality-control sample: a hash of its key, so that the decision is
    the same on every read (a random draw would pick a different sample each time)."""
    fraction = int.from_bytes(hashlib.sha256(source_key.encode("utf-8")).digest()[:8], "big") / 2**64
    return fraction < share


def read_captures(
    source: Any,
    endpoint: str,
    confidence_threshold: float,
    sample_share: float,
    since: datetime,
    until: datetime,
    version_at: Callable[[datetime], int | None] | None = None,
) -> tuple[list[Candidate], FillResult]:
    """The window's captured reviews that go to people (see the module's docstring), and what was read.

    ``source``: a ``capture_window.CaptureSource`` (a local folder, or S3 on AWS).
    ``version_at(time) -> int | None``: the version that served at a time, for captures that do not name it
    (``eventMetadata.modelVersion``).
    """
    reader = capture_window
    result = FillResult()
    candidates: list[Candidate] = []
    window = reader.Window(since, until)
    for path, lines in source.files(window):
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            result.lines += 1
            where = f"{path} line {number}"
            try:
                invocation = reader.parse_line(line)
            except reader.Malformed as error:
                detail = f" ({error.detail})" if error.detail else ""
                result.unreadable.append(f"{where}: {error.reason}{detail}")
                continue
            if invocation.time is not None and invocation.time not in window:
                continue
            if invocation.predictions is None:
                continue  # an empty, non-UTF-8 or refused request: no answer to review
            metadata = json.loads(line).get("eventMetadata") or {}
            event = str(metadata.get("inferenceId") or metadata.get("eventId") or where)
            version = metadata.get("modelVersion")
            if not isinstance(version, int) and version_at is not None and invocation.time is not None:
                version = version_at(invocation.time)
            probabilities = _probabilities(reader, line, len(invocation.reviews))
            for index, (text, (sentiment, probability)) in enumerate(
                zip(invocation.reviews, invocation.predictions, strict=True)
            ):
                result.reviews += 1
                key = f"capture:{endpoint}:{event}:{index}"
                if probability < confidence_threshold:
                    reason = "low_confidence"
                elif sampled(key, sample_share):
                    reason = "quality_sample"
                else:
                    continue
                candidates.append(
                    Candidate(
                        key,
                        f"{where}, review {index + 1}",
                        reason,
                        text,
                        endpoint,
                        version if isinstance(version, int) else None,
                        sentiment,
                        probability,
                        probabilities[index] if probabilities else None,
                    )
                )
    result.candidates = len(candidates)
    return candidates, result


def _probabilities(reader: ModuleType, line: bytes, count: int) -> list[dict[str, float]] | None:
    """Each review's class probabilities, when the response carries them (the handler's ``probabilities``)."""
    try:
        _, body = reader._payload_bytes(json.loads(line)["captureData"]["endpointOutput"], "endpointOutput")
        results = [json.loads(x) for x in body.decode("utf-8").splitlines() if x.strip()]
        if len(results) == 1 and isinstance(results[0], list):
            results = results[0]
        found = [{k: float(v) for k, v in r["probabilities"].items() if k in LABELS} for r in results]
    except (ValueError, KeyError, TypeError, AttributeError, reader.Malformed):
        return None
    return found if len(found) == count else None


# --------------------------------------------------------------------------------------------- Amazon A2I
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


def flow_definition_request(
    name_prefix: str,
    workteam_arn: str,
    human_task_ui_arn: str,
    role_arn: str,
    output_uri: str,
    kms_key_arn: str,
    labels_per_item: int,
) -> dict[str, Any]:
    """The ``CreateFlowDefinition`` request of a stage's human review, named ``<prefix>-<digest>`` after what
    it holds: the same settings give the same flow definition, other settings a new one."""
    request: dict[str, Any] = {
        "HumanLoopConfig": {
            "WorkteamArn": workteam_arn,
            "HumanTaskUiArn": human_task_ui_arn,
            "TaskTitle": TASK_TITLE,
            "TaskDescription": TASK_DESCRIPTION,
            "TaskCount": labels_per_item,
            "TaskAvailabilityLifetimeInSeconds": 7 * 24 * 3600,
            "TaskTimeLimitInSeconds": 600,
            "TaskKeywords": ["sentiment", "text classification", "reviews"],
        },
        "OutputConfig": {"S3OutputPath": output_uri, "KmsKeyId": kms_key_arn},
        "RoleArn": role_arn,
    }
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:FLOW_DIGEST_LENGTH]
    return {"FlowDefinitionName": f"{name_prefix}-{digest}", **request}


FLOW_DIGEST_LENGTH = 8


def ensure_flow_definition(client: Any, request: dict[str, Any]) -> tuple[str, bool]:
    """The flow definition of ``request``, created when it does not exist; returns its ARN and whether it was
    created now. One still being created is waited for by the caller's next run (loops need it Active)."""
    name = request["FlowDefinitionName"]
    try:
        described = client.describe_flow_definition(FlowDefinitionName=name)
    except client.exceptions.ResourceNotFound:
        return str(client.create_flow_definition(**request)["FlowDefinitionArn"]), True
    if described["FlowDefinitionStatus"] == "Failed":
        raise RuntimeError(
            f"flow definition {name} failed: {described.get('FailureReason', 'no reason given')}; delete it "
            "(aws sagemaker delete-flow-definition) and the next run creates it again"
        )
    return str(described["FlowDefinitionArn"]), False
