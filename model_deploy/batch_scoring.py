"""Batch scoring of a review file: every row in, every row out with its prediction or why it has none.

The local counterpart of a SageMaker Batch Transform (:mod:`model_deploy.aws.batch_transform`), through the
same handler: the version's own ``code/inference.py`` loaded as the endpoint loads it, each batch of reviews
sent as the ``application/json`` body an endpoint or a transform gets (``{"features": [...]}``) through
``input_fn`` -> ``predict_fn`` -> ``output_fn``. Or, with an endpoint, the same bodies through the runtime API.

The input CSV is streamed: rows are read, scored ``batch_size`` at a time and written before the next batch
is read, so memory stays flat whatever the file's size. The output has every input row, in input order, with
every input column unchanged (the id column among them) and these after them:

- ``row_number``: the row's place among the input's data rows (1 = the first after the header);
- ``status``: ``scored`` or ``unscorable``; ``reason``: why not (empty when scored);
- ``sentiment``, ``predicted_label``, ``probability``, ``probability_<sentiment>``: the handler's answer.

A row is unscorable when it has not as many fields as the header, when its review text is empty, or when the
handler refuses it (not Unicode text, too long, ...). A batch the handler refuses is retried one row at a time
so that only the rows at fault are marked, with the handler's own message as their reason; the run goes on.
Bytes that are not UTF-8 are kept as they came (``surrogateescape``, in and out).
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from model_build.steps import csv_rows

TEXT_COLUMN = "Review Text"
ENCODING_ERRORS = "surrogateescape"
SENTIMENTS = ("negative", "neutral", "positive")
ADDED_COLUMNS: tuple[str, ...] = (
    "row_number",
    "status",
    "reason",
    "sentiment",
    "predicted_label",
    "probability",
    *(f"probability_{name}" for name in SENTIMENTS),
)
SCORED, UNSCORABLE = "scored", "unscorable"
DEFAULT_BATCH_SIZE = 64
"""Reviews per handler call: the handler's own per-request cap (``MAX_REVIEWS_PER_REQUEST``) by default."""


class Unscorable(Exception):
    """The scorer refused a batch as the client's fault (an ``InvalidRequest``, an HTTP 4xx)."""


Scorer = Callable[[Sequence[str]], list[dict[str, Any]]]
"""Reviews -> one result dict per review, in order; raises :class:`Unscorable` for a bad request."""


@dataclass
class BatchResult:
    rows: int = 0
    scored: int = 0
    unscorable: Counter[str] = field(default_factory=Counter)
    """Reason -> rows (reasons with the row's own details stripped, so that they count together)."""
    sentiments: Counter[str] = field(default_factory=Counter)

    @property
    def unscorable_rows(self) -> int:
        return sum(self.unscorable.values())


def handler_scorer(handler: Any, model: Any) -> Scorer:
    """Score through a loaded handler module exactly as a request would go: JSON body in, JSON out."""
    invalid = getattr(handler, "InvalidRequest", ValueError)

    def score(reviews: Sequence[str]) -> list[dict[str, Any]]:
        body = json.dumps({"features": list(reviews)})
        try:
            parsed = handler.input_fn(body, "application/json")
        except invalid as error:
            raise Unscorable(str(error)) from None
        rejected = getattr(handler, "RejectedRequest", None)
        if rejected is not None and isinstance(parsed, rejected):
            raise Unscorable(parsed.message)
        answer, _ = handler.output_fn(handler.predict_fn(parsed, model), "application/json")
        return list(json.loads(answer))

    return score


TOO_LONG_FOR_THE_ENDPOINT = (
    "the review text is too long for the endpoint: a request of it alone is over its size limit"
)


def endpoint_scorer(runtime: Any, endpoint_name: str) -> Scorer:
    """Score through an endpoint's runtime API (boto3 ``sagemaker-runtime`` or the local server's)."""
    from botocore.exceptions import ClientError

    def score(reviews: Sequence[str]) -> list[dict[str, Any]]:
        try:
            answer = runtime.invoke_endpoint(
                EndpointName=endpoint_name,
                Body=json.dumps({"features": list(reviews)}),
                ContentType="application/json",
                Accept="application/json",
            )
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            original = error.response.get("OriginalStatusCode", status)
            if status == 413 and len(reviews) == 1:  # the endpoint's advice to split the request cannot apply
                raise Unscorable(TOO_LONG_FOR_THE_ENDPOINT) from None
            if 400 <= int(original or status) < 500 or error.response["Error"].get("Code") == "ModelError":
                raise Unscorable(error.response["Error"].get("Message", str(error))) from None
            raise
        return list(json.loads(answer["Body"].read()))

    return score


def count_rows(path: Path) -> int:
    """Data rows of a CSV (quoted newlines counted as the reader counts them): the progress bar's total."""
    with (
        csv_rows.any_field_size(),
        path.open(newline="", encoding="utf-8", errors=ENCODING_ERRORS) as handle,
    ):
        return max(sum(1 for _ in csv_rows.records(handle, blank_lines=True)) - 1, 0)


def score_file(
    input_path: Path,
    output_path: Path,
    score: Scorer,
    *,
    text_column: str = TEXT_COLUMN,
    id_column: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    console: IO[str] | None = None,
) -> BatchResult:
    """Score every row of ``input_path`` into ``output_path``; see the module docstring for the columns.

    ``id_column`` is only checked to exist (every input column is kept anyway); a missing header, text
    column or id column is a ``ValueError`` naming the columns found.
    """
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size}: expected 1 or more")
    result = BatchResult()
    total = count_rows(input_path) if progress else None
    output_path.parent.mkdir(parents=True, exist_ok=True)
    partial = output_path.with_name(output_path.name + ".partial")
    with (
        csv_rows.any_field_size(),  # a review too long to score is the handler's to refuse, and to count
        input_path.open(newline="", encoding="utf-8", errors=ENCODING_ERRORS) as source,
        partial.open("w", newline="", encoding="utf-8", errors=ENCODING_ERRORS) as target,
        tqdm(
            total=total, desc="scoring", unit=" rows", disable=not progress, file=console or sys.stderr
        ) as bar,
    ):
        reader = csv_rows.records(source, blank_lines=True)  # the pipeline's reader, blank lines kept
        _, header = next(reader, (0, []))
        if not header:
            raise ValueError(f"{input_path} is empty: expected a CSV header with {text_column!r}")
        for column in (text_column, id_column):
            if column is not None and column not in header:
                raise ValueError(
                    f"{input_path} has no column {column!r}; its columns: {', '.join(map(repr, header))}"
                )
        clashes = [name for name in ADDED_COLUMNS if name in header]
        if clashes:
            raise ValueError(
                f"{input_path} already has the output column(s) {', '.join(clashes)}: rename them"
            )
        writer = csv.writer(target)
        writer.writerow([*header, *ADDED_COLUMNS])
        text_index = header.index(text_column)
        for batch in _batches(reader, batch_size, start=1):
            outcomes = _score_batch(batch, len(header), text_index, score)
            for (number, _, fields), outcome in zip(batch, outcomes, strict=True):
                writer.writerow([*csv_rows.fit(fields, len(header)), number, *outcome.columns()])
                result.rows += 1
                if outcome.reason:
                    result.unscorable[_reason_kind(outcome.reason)] += 1
                else:
                    result.scored += 1
                    result.sentiments[str(outcome.prediction.get("sentiment"))] += 1
            bar.update(len(batch))
    partial.replace(output_path)
    return result


@dataclass(frozen=True)
class _Outcome:
    prediction: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def columns(self) -> list[Any]:
        if self.reason:
            return [UNSCORABLE, self.reason, *[""] * (len(ADDED_COLUMNS) - 3)]
        probabilities = self.prediction.get("probabilities", {})
        return [
            SCORED,
            "",
            self.prediction.get("sentiment", ""),
            self.prediction.get("predicted_label", ""),
            _number(self.prediction.get("probability")),
            *(_number(probabilities.get(name)) for name in SENTIMENTS),
        ]


def _number(value: Any) -> str:
    return f"{value:.6f}" if isinstance(value, float) else ("" if value is None else str(value))


Numbered = tuple[int, int, list[str]]
"""A data row: its number (1 = the first after the header), the physical line it starts on, its fields."""


def _batches(rows: Iterator[tuple[int, list[str]]], size: int, start: int) -> Iterator[list[Numbered]]:
    batch: list[Numbered] = []
    for number, (line, fields) in enumerate(rows, start=start):
        batch.append((number, line, fields))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _score_batch(batch: list[Numbered], width: int, text_index: int, score: Scorer) -> list[_Outcome]:
    """The batch's outcomes in order: rows refused before the model, then one call for the rest (or, if the
    handler refuses that call, one call per row, so that only the rows at fault are marked)."""
    outcomes: list[_Outcome | None] = []
    texts: list[str] = []
    for _, line, fields in batch:
        if not fields:
            outcomes.append(_Outcome(reason="the line is empty"))
        elif len(fields) != width:
            outcomes.append(_Outcome(reason=csv_rows.describe(len(fields), width, line)))
        elif not fields[text_index].strip():
            outcomes.append(_Outcome(reason="the review text is empty"))
        else:
            outcomes.append(None)
            texts.append(fields[text_index])
    if texts:
        try:
            predictions = [_Outcome(prediction) for prediction in score(texts)]
        except Unscorable:
            predictions = [_score_one(text, score) for text in texts]
        if len(predictions) != len(texts):
            raise RuntimeError(f"the scorer answered {len(predictions)} results for {len(texts)} reviews")
        answers = iter(predictions)
        outcomes = [outcome if outcome is not None else next(answers) for outcome in outcomes]
    return [outcome for outcome in outcomes if outcome is not None]


def _score_one(text: str, score: Scorer) -> _Outcome:
    try:
        (prediction,) = score([text])
    except Unscorable as error:
        return _Outcome(reason=str(error).replace("the body: features[0] ", "the review text "))
    return _Outcome(prediction)


def _reason_kind(reason: str) -> str:
    """``line 4: the row has 3 fields, the header 11`` and ``line 9: ... has 4 fields ...`` count as one."""
    if ": the row has " in reason:
        return "the row has another number of fields than the header"
    if " has " in reason and " characters; at most " in reason:
        return "the review text is too long"
    return reason.split(": ")[0] if reason.startswith("the review text is not valid Unicode") else reason


def summary_lines(result: BatchResult, output_path: Path) -> list[str]:
    lines = [
        f"Scored {result.scored} of {result.rows} rows into {output_path}"
        + (
            f" ({', '.join(f'{n} {s}' for s, n in sorted(result.sentiments.items()))})"
            if result.scored
            else ""
        )
    ]
    if result.unscorable:
        lines.append(f"{result.unscorable_rows} rows could not be scored (kept, status 'unscorable'):")
        lines += [f"  {count:>6}  {reason}" for reason, count in result.unscorable.most_common()]
    return lines


def load_version(archive: Path, work_dir: Path) -> Scorer:
    """A version's ``model.tar.gz`` unpacked into ``work_dir``, its handler imported, ``model_fn`` called once
    (as the serving container does, :mod:`model_deploy.local.host`): a scorer through that handler."""
    from model_deploy.local.host import ServingError, load_handler, unpack

    model_dir = unpack(archive, work_dir / "model")
    handler = load_handler(model_dir)
    try:
        model = handler.model_fn(str(model_dir))
    except (Exception, SystemExit) as error:
        raise ServingError(f"model_fn failed: {type(error).__name__}: {error}") from error
    return handler_scorer(handler, model)
