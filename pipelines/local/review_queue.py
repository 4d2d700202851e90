"""The human review queue: answers the model was unsure of, and unlabeled reviews, labeled by people.

The local counterpart of Amazon Augmented AI (A2I) and Ground Truth, in an embedded SQLite store
(``<run dir>/review.db``), like the registry:

- :func:`fill` reads an endpoint's data capture (with the monitoring job's reader,
  ``model_build/steps/capture_window.py``) and queues every review whose top probability is below the stage's
  ``human_review.confidence_threshold``, plus a ``sample_share`` of the confident ones as a quality check. The
  sample is drawn from a hash of the capture's id, not at random, so that filling again decides the same way;
  each item keeps a unique ``source_key`` (the capture's event id and the review's place in it), so the same
  capture never enters twice.
- :func:`add_unlabeled` queues a CSV of reviews (the Ground Truth part); a row that has a ``Rating`` keeps it.
- :meth:`ReviewQueue.label` records one reviewer's answer (who, what, when). Once an item has
  ``labels_per_item`` answers it is consolidated by majority; a tie waits for one more reviewer. Skips are
  recorded (the reviewer is not asked again) and do not count.
- :func:`export` writes the consolidated items as a CSV in the pipeline's input schema (the Women's E-Commerce
  Clothing Reviews columns), with the human label in ``Rating`` (:data:`RATING_BY_LABEL`) and its provenance in
  ``Label Source``.

Nothing is deleted: labels are appended, and a refused label (unknown, or for an item already consolidated)
changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import sqlite3
import sys
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from model_build.pipeline_spec import STEPS_SOURCE_DIR
from model_build.steps.features import (
    LABEL_SOURCE_COLUMN,
    RATING_COLUMN,
    RAW_COLUMNS,
    SENTIMENT_BY_RATING,
    SENTIMENT_NAMES,
    TEXT_COLUMN,
)
from pipelines.local import sqlite_store
from pipelines.local.workspace import REPO_ROOT


class HumanReviewSettings(Protocol):
    """Which answers go to people: a stage file's ``human_review`` block (``model_deploy.stage_config``),
    declared here by what the queue reads, since the deploy side sits above these stand-ins."""

    @property
    def confidence_threshold(self) -> float: ...

    @property
    def sample_share(self) -> float: ...

    @property
    def labels_per_item(self) -> int: ...


def now() -> str:
    """The queue's timestamps: UTC, to the second, as the endpoints' state writes them."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


LABELS: tuple[str, ...] = tuple(SENTIMENT_NAMES[s] for s in sorted(SENTIMENT_NAMES))
"""What a reviewer may answer: the model's sentiments, in order (negative, neutral, positive)."""
SKIP = "skip"
RATING_BY_LABEL: dict[str, int] = {"negative": 1, "neutral": 3, "positive": 5}
"""The Rating an exported human label gets when the review had none, or one that disagrees: the extreme of
each class's ratings (1-2 negative, 3 neutral, 4-5 positive), so the pipeline's label rule
(``features.SENTIMENT_BY_RATING``) turns it back into the same sentiment. A rating that agrees is kept."""
EXPORT_COLUMNS: tuple[str, ...] = ("", *RAW_COLUMNS, LABEL_SOURCE_COLUMN)
"""The dataset's columns (its first, unnamed one is the row index), then the provenance:
``human-review:item-<id>:<n> of <m> reviewers agreed`` (``a2i:<loop>:...`` from A2I)."""
DATABASE = "review.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_key TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    text TEXT NOT NULL,
    endpoint TEXT,
    version INTEGER,
    predicted TEXT,
    probability REAL,
    probabilities TEXT,
    row TEXT,
    labels_per_item INTEGER NOT NULL,
    created TEXT NOT NULL,
    consolidated TEXT,
    consolidated_at TEXT
);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items(id),
    reviewer TEXT NOT NULL,
    label TEXT NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (item_id, reviewer)
);
CREATE INDEX IF NOT EXISTS labels_by_item ON labels(item_id)
"""


class ReviewError(ValueError):
    """A request the queue refuses (unknown label or item, an item already consolidated, an unreadable file):
    the message says which and what to do; nothing was changed."""


@dataclass(frozen=True)
class Label:
    reviewer: str
    label: str
    created: str


@dataclass(frozen=True)
class Item:
    """One review in the queue, with where it came from and, when it came from traffic, the model's answer."""

    id: int
    source_key: str
    source: str
    reason: str
    """``low_confidence``, ``quality_sample`` (a confident answer checked) or ``unlabeled`` (a file's review)."""
    text: str
    endpoint: str | None
    version: int | None
    predicted: str | None
    probability: float | None
    probabilities: dict[str, float] | None
    row: dict[str, str] | None
    """The CSV row of an ``unlabeled`` item (its other columns go to the export)."""
    labels_per_item: int
    created: str
    consolidated: str | None
    consolidated_at: str | None
    labels: tuple[Label, ...] = ()

    @property
    def answers(self) -> list[Label]:
        """The labels that count: every reviewer's but the skips."""
        return [label for label in self.labels if label.label != SKIP]

    @property
    def agreement(self) -> float | None:
        """The share of answers that are the most common one (1.0: unanimous); None before any."""
        answers = self.answers
        if not answers:
            return None
        return Counter(a.label for a in answers).most_common(1)[0][1] / len(answers)

    @property
    def disagreement(self) -> bool:
        return len({a.label for a in self.answers}) > 1


# ------------------------------------------------------------------------------------------------- the store
class ReviewQueue:
    """``<run dir>/review.db``: items and their labels. Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._connection = sqlite_store.connect(path)
            with self._transaction() as connection:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    connection.execute(statement)
        except sqlite3.DatabaseError as error:
            raise ReviewError(f"{path} is not a readable review queue ({error}); move it aside") from None

    def __enter__(self) -> ReviewQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._connection.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return sqlite_store.transaction(self._connection)

    def enqueue(self, candidates: Sequence[Candidate], labels_per_item: int) -> int:
        """Insert the candidates whose ``source_key`` is new; returns how many were new."""
        created = now()
        with self._transaction() as connection:
            before = connection.total_changes
            connection.executemany(
                "INSERT OR IGNORE INTO items (source_key, source, reason, text, endpoint, version, predicted, "
                "probability, probabilities, row, labels_per_item, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        c.source_key,
                        c.source,
                        c.reason,
                        c.text,
                        c.endpoint,
                        c.version,
                        c.predicted,
                        c.probability,
                        json.dumps(c.probabilities) if c.probabilities is not None else None,
                        json.dumps(c.row) if c.row is not None else None,
                        labels_per_item,
                        created,
                    )
                    for c in candidates
                ],
            )
            return connection.total_changes - before

    def items(self, consolidated: bool | None = None) -> list[Item]:
        """Every item (oldest first), or only the consolidated (True) or open (False) ones."""
        where = {None: "", True: " WHERE consolidated IS NOT NULL", False: " WHERE consolidated IS NULL"}
        rows = self._connection.execute(f"SELECT * FROM items{where[consolidated]} ORDER BY id").fetchall()
        labels: dict[int, list[Label]] = {}
        for row in self._connection.execute("SELECT * FROM labels ORDER BY id"):
            labels.setdefault(row["item_id"], []).append(Label(row["reviewer"], row["label"], row["created"]))
        return [_item(row, labels.get(row["id"], [])) for row in rows]

    def item(self, item_id: int) -> Item:
        row = self._connection.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise ReviewError(f"the review queue ({self.path}) has no item {item_id}")
        labels = [
            Label(r["reviewer"], r["label"], r["created"])
            for r in self._connection.execute(
                "SELECT * FROM labels WHERE item_id = ? ORDER BY id", (item_id,)
            )
        ]
        return _item(row, labels)

    def next_for(self, reviewer: str) -> Item | None:
        """The oldest open item this reviewer has not answered or skipped yet."""
        row = self._connection.execute(
            "SELECT id FROM items WHERE consolidated IS NULL AND id NOT IN "
            "(SELECT item_id FROM labels WHERE reviewer = ?) ORDER BY id LIMIT 1",
            (reviewer,),
        ).fetchone()
        return None if row is None else self.item(row["id"])

    def label(self, item_id: int, reviewer: str, label: str) -> Item:
        """Record ``reviewer``'s ``label`` (or :data:`SKIP`) for the item, and consolidate it when it has enough
        answers with a majority. Refused, with nothing changed: an unknown label or item, a blank reviewer, an
        item already consolidated, a second answer from the same reviewer."""
        reviewer = reviewer.strip()
        if not reviewer:
            raise ReviewError("a label needs the reviewer's name (who labeled it is recorded)")
        if label not in (*LABELS, SKIP):
            raise ReviewError(
                f"unknown label {label!r} for item {item_id}: use one of {', '.join(LABELS)} (or {SKIP})"
            )
        with self._transaction() as connection:
            item = self.item(item_id)
            if item.consolidated is not None:
                raise ReviewError(
                    f"item {item_id} was already consolidated as {item.consolidated} at {item.consolidated_at} "
                    f"(by {', '.join(a.reviewer for a in item.answers)}): {reviewer}'s {label!r} was not recorded"
                )
            previous = next((x for x in item.labels if x.reviewer == reviewer), None)
            if previous is not None:
                raise ReviewError(
                    f"{reviewer} already answered item {item_id} ({previous.label!r} at {previous.created}); "
                    "each reviewer answers an item once"
                )
            created = now()
            connection.execute(
                "INSERT INTO labels (item_id, reviewer, label, created) VALUES (?, ?, ?, ?)",
                (item_id, reviewer, label, created),
            )
            answers = [*item.answers, *([Label(reviewer, label, created)] if label != SKIP else [])]
            winner = majority(answers, item.labels_per_item)
            if winner is not None:
                connection.execute(
                    "UPDATE items SET consolidated = ?, consolidated_at = ? WHERE id = ?",
                    (winner, created, item_id),
                )
        return self.item(item_id)


def majority(answers: Sequence[Label], labels_per_item: int) -> str | None:
    """The consolidated label: the most common answer once there are ``labels_per_item`` of them and one label
    leads (a tie waits for another reviewer)."""
    if len(answers) < labels_per_item:
        return None
    (first, count), *rest = Counter(a.label for a in answers).most_common()
    return first if not rest or rest[0][1] < count else None


def _item(row: sqlite3.Row, labels: Sequence[Label]) -> Item:
    values = dict(row)
    for key in ("probabilities", "row"):
        values[key] = json.loads(values[key]) if values[key] is not None else None
    return Item(**values, labels=tuple(labels))


# ------------------------------------------------------------------------------------------------- filling
def step_library(name: str) -> ModuleType:
    """A library of the steps' folder (``model_build/steps/<name>.py``), imported as the processing container
    imports it: its siblings are top-level modules, so the steps folder goes on ``sys.path``. The capture reader
    (``capture_window``) and the rule (``review_rule``) are the monitoring and human-loop jobs' own."""
    steps = str(REPO_ROOT / STEPS_SOURCE_DIR)
    if steps not in sys.path:
        sys.path.append(steps)
    return importlib.import_module(name)


def capture_window() -> ModuleType:
    """The monitoring job's capture reader (``model_build/steps/capture_window.py``): one reader for both."""
    return step_library("capture_window")


if TYPE_CHECKING:
    from model_build.steps.review_rule import Candidate, FillResult
else:
    Candidate = step_library("review_rule").Candidate
    FillResult = step_library("review_rule").FillResult


def sampled(source_key: str, share: float) -> bool:
    """Whether a confident answer is in the quality-control sample (``review_rule.sampled``)."""
    return bool(step_library("review_rule").sampled(source_key, share))


def read_captures(
    captures: Path | Any,
    endpoint: str,
    settings: HumanReviewSettings,
    since: datetime,
    until: datetime,
    version_at: Any = None,
) -> tuple[list[Candidate], FillResult]:
    """The window's captured reviews that go to people, by the stage's rule (``review_rule.read_captures``,
    which the human-loop job on AWS runs too), and what was read.

    ``captures``: a local folder, or a ``capture_window.CaptureSource`` (S3 on AWS).
    ``version_at(time) -> int | None``: the version that served at a time, for captures that do not name it
    (``eventMetadata.modelVersion``).
    """
    source = capture_window().capture_source(str(captures)) if isinstance(captures, Path) else captures
    candidates, result = step_library("review_rule").read_captures(
        source, endpoint, settings.confidence_threshold, settings.sample_share, since, until, version_at
    )
    return candidates, result


def read_unlabeled(path: Path) -> list[Candidate]:
    """A CSV of reviews (``Review Text``; other columns of the dataset kept) as queue candidates; a row's key is
    a hash of its text and its row values, so adding the same file twice adds nothing."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            if TEXT_COLUMN not in header:
                raise ReviewError(
                    f"{path}: no {TEXT_COLUMN!r} column (found: {', '.join(map(repr, header)) or 'nothing'}); "
                    "a file of reviews to label needs one"
                )
            candidates = []
            for number, row in enumerate(reader, start=2):
                text = (row.get(TEXT_COLUMN) or "").strip()
                if not text:
                    continue
                kept = {k: v for k, v in row.items() if k in RAW_COLUMNS and isinstance(v, str)}
                digest = hashlib.sha256(json.dumps(kept, sort_keys=True).encode("utf-8")).hexdigest()[:16]
                candidates.append(
                    Candidate(f"file:{digest}", f"{path} line {number}", "unlabeled", text, row=kept)
                )
    except FileNotFoundError:
        raise ReviewError(f"{path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise ReviewError(f"{path}: not a UTF-8 CSV file ({error})") from None
    return candidates


def add_unlabeled_items(queue: ReviewQueue, path: Path, settings: HumanReviewSettings) -> tuple[int, int]:
    """Queue a CSV's reviews: (how many were new, how many were read)."""
    candidates = read_unlabeled(path)
    return queue.enqueue(candidates, settings.labels_per_item), len(candidates)


# ------------------------------------------------------------------------------------------------- export
def labeled_row(index: str, text: str, label: str, row: dict[str, str] | None, source: str) -> dict[str, str]:
    """A human-labeled review as a row of the dataset (``index`` in its unnamed first column): the label decides
    ``Rating`` (a rating of the row's own that agrees is kept, see :data:`RATING_BY_LABEL`), ``source`` goes
    to ``Label Source``. The local export and the A2I output conversion both write these rows."""
    values = {column: "" for column in EXPORT_COLUMNS}
    values.update(row or {})
    original = (row or {}).get(RATING_COLUMN, "").strip()
    sentiment = SENTIMENT_BY_RATING.get(int(original)) if original.isdigit() else None
    agrees = sentiment is not None and SENTIMENT_NAMES[sentiment] == label
    values.update(
        {
            "": index,
            TEXT_COLUMN: text,
            RATING_COLUMN: original if agrees else str(RATING_BY_LABEL[label]),
            LABEL_SOURCE_COLUMN: source,
        }
    )
    return values


def export_row(item: Item) -> dict[str, str]:
    """One consolidated item as a row of the dataset."""
    if item.consolidated is None:
        raise ReviewError(f"item {item.id} is not consolidated yet: it has no label to export")
    agreed = sum(a.label == item.consolidated for a in item.answers)
    source = f"human-review:item-{item.id}:{agreed} of {len(item.answers)} reviewers agreed"
    return labeled_row(str(item.id), item.text, item.consolidated, item.row, source)


def export(queue: ReviewQueue, output: Path) -> int:
    """Write every consolidated item to ``output`` (a new CSV in the pipeline's input schema); returns the
    count. Refuses to overwrite: each export is a new file beside the earlier ones."""
    items = queue.items(consolidated=True)
    if not items:
        raise ReviewError(
            "no consolidated item to export yet: label the queue first (`pipelines review list`)"
        )
    if output.exists():
        raise ReviewError(f"{output} exists; an export is a new file: name another one")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(export_row(item) for item in items)
    partial.replace(output)
    return len(items)


# ------------------------------------------------------------------------------------------------- progress
@dataclass(frozen=True)
class VersionAccuracy:
    """How the model that answered did on the items people consolidated."""

    version: int | None
    labeled: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.labeled if self.labeled else 0.0


@dataclass(frozen=True)
class Progress:
    items: int
    consolidated: int
    labels: int
    skips: int
    disagreements: list[Item]
    """Items whose reviewers did not all agree (consolidated or still tied)."""
    agreement: float | None
    """Mean agreement over the items with more than one answer; None when none has."""
    by_version: list[VersionAccuracy]

    @property
    def open(self) -> int:
        return self.items - self.consolidated


def progress(items: Sequence[Item]) -> Progress:
    """The queue's state, as the bulk view and ``review list`` show it."""
    multi = [i.agreement for i in items if len(i.answers) > 1 and i.agreement is not None]
    versions: dict[int | None, list[Item]] = {}
    for item in items:
        if item.consolidated is not None and item.predicted is not None:
            versions.setdefault(item.version, []).append(item)
    return Progress(
        items=len(items),
        consolidated=sum(i.consolidated is not None for i in items),
        labels=sum(len(i.answers) for i in items),
        skips=sum(len(i.labels) - len(i.answers) for i in items),
        disagreements=[i for i in items if i.disagreement],
        agreement=sum(multi) / len(multi) if multi else None,
        by_version=[
            VersionAccuracy(version, len(group), sum(i.predicted == i.consolidated for i in group))
            for version, group in sorted(versions.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
        ],
    )
