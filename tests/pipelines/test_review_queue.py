"""The human review queue end to end: captured traffic with unsure answers -> queue -> labels (several
reviewers, a disagreement) -> export -> the pipeline's own input reader and label rule take the export."""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, datetime
from pathlib import Path

import features
import pytest
import reviews_csv
import splits

from model_deploy.stage_config import load_stage
from pipelines.cli import main
from pipelines.commands.review import queue_of
from pipelines.local.review_queue import (
    EXPORT_COLUMNS,
    LABEL_SOURCE_COLUMN,
    RATING_BY_LABEL,
    ReviewError,
    ReviewQueue,
    majority,
    sampled,
)
from pipelines.local.workspace import Workspace

PROD = load_stage("prod").human_review


def run_cli(capsys: pytest.CaptureFixture[str], workspace: Workspace, *argv: str) -> tuple[int, str, str]:
    code = main(["review", *argv, "--run-dir", str(workspace.root)])
    out, err = capsys.readouterr()
    return code, out, err


def test_captured_unsure_answers_are_labeled_and_exported_for_the_next_run(
    served: tuple[Workspace, str, Path], capsys: pytest.CaptureFixture[str], sample_csv: Path, tmp_path: Path
) -> None:
    workspace, name, capture_file = served
    assert PROD.labels_per_item == 3 and PROD.confidence_threshold == 0.6

    code, out, _ = run_cli(capsys, workspace, "fill", "--since", "2h")
    assert code == 0
    assert f"unreadable: {capture_file} line 4: line not JSON" in out
    with queue_of(workspace) as queue:
        items = queue.items()
    confident_key = items[0].source_key.removesuffix(":0") + ":1"  # the first request's second review
    confident_sampled = sampled(confident_key, PROD.sample_share)
    texts = [item.text for item in items]
    assert texts[:1] == ["Runs small, the fabric is fine."]
    assert "Returned it, the seams came apart." in texts and "It is a dress." in texts
    assert ("Love it, wearing it every day!" in texts) == confident_sampled
    unsure = {item.text: item for item in items if item.reason == "low_confidence"}
    assert len(unsure) == 3
    first = unsure["Runs small, the fabric is fine."]
    assert (first.endpoint, first.version, first.predicted, first.probability) == (name, 2, "neutral", 0.41)
    assert first.probabilities is not None and first.probabilities["neutral"] == 0.41
    assert str(capture_file) in first.source and first.labels_per_item == 3

    # Filling again adds nothing: the same capture never enters twice.
    code, out, _ = run_cli(capsys, workspace, "fill", "--since", "2h")
    assert code == 0 and ", 0 new in the queue" in out
    with queue_of(workspace) as queue:
        assert len(queue.items()) == len(items)

    dress, seams = unsure["It is a dress."].id, unsure["Returned it, the seams came apart."].id
    for reviewer, label in (("alice", "positive"), ("bob", "neutral"), ("carol", "neutral")):
        assert run_cli(capsys, workspace, "label", str(first.id), label, "--reviewer", reviewer)[0] == 0
    for reviewer, label in (
        ("alice", "negative"),
        ("bob", "skip"),
        ("carol", "negative"),
        ("dan", "negative"),
    ):
        assert run_cli(capsys, workspace, "label", str(seams), label, "--reviewer", reviewer)[0] == 0
    for reviewer, label in (("alice", "positive"), ("bob", "neutral"), ("carol", "negative")):
        assert run_cli(capsys, workspace, "label", str(dress), label, "--reviewer", reviewer)[0] == 0

    with queue_of(workspace) as queue:
        labeled = queue.item(first.id)
        assert labeled.consolidated == "neutral" and labeled.disagreement
        assert [(x.reviewer, x.label) for x in labeled.labels] == [
            ("alice", "positive"),
            ("bob", "neutral"),
            ("carol", "neutral"),
        ]
        assert all(datetime.fromisoformat(x.created) <= datetime.now(UTC) for x in labeled.labels)
        assert queue.item(seams).consolidated == "negative" and len(queue.item(seams).answers) == 3
        assert queue.item(dress).consolidated is None  # a three-way tie waits for a fourth reviewer

    code, out, _ = run_cli(capsys, workspace, "list")
    assert code == 0
    assert "agreement 67%" in out  # (2/3 + 3/3 + 1/3) / 3 over the items with more than one answer
    assert f"disagreement on item {first.id}: alice: positive, bob: neutral, carol: neutral -> neutral" in out
    assert f"disagreement on item {dress}: alice: positive, bob: neutral, carol: negative -> tied" in out
    assert "version 2: 2 of 2 answers right (100%)" in out

    # Bad input: each refused with what and where, nothing changed.
    code, _, err = run_cli(capsys, workspace, "label", str(dress), "postive", "--reviewer", "erin")
    assert (
        code == 2
        and f"unknown label 'postive' for item {dress}: use one of negative, neutral, positive" in err
    )
    code, _, err = run_cli(capsys, workspace, "label", str(seams), "positive", "--reviewer", "erin")
    assert (
        code == 2
        and f"item {seams} was already consolidated as negative" in err
        and "was not recorded" in err
    )
    code, _, err = run_cli(capsys, workspace, "label", str(dress), "negative", "--reviewer", "alice")
    assert code == 2 and f"alice already answered item {dress} ('positive'" in err
    code, _, err = run_cli(capsys, workspace, "label", "999", "negative", "--reviewer", "alice")
    assert code == 2 and "has no item 999" in err
    with queue_of(workspace) as queue:
        assert [len(queue.item(i).labels) for i in (first.id, seams, dress)] == [3, 4, 3]
        assert queue.item(dress).consolidated is None

    code, out, _ = run_cli(capsys, workspace, "export")
    assert code == 0 and "2 human labels written to" in out
    (exported,) = workspace.local_path(workspace.raw_reviews_uri).glob("human-labels-*.csv")
    with exported.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
        assert tuple(next(csv.reader(exported.open(encoding="utf-8")))) == EXPORT_COLUMNS
    by_text = {row["Review Text"]: row for row in rows}
    assert by_text["Runs small, the fabric is fine."]["Rating"] == str(RATING_BY_LABEL["neutral"])
    assert by_text["Runs small, the fabric is fine."][LABEL_SOURCE_COLUMN] == (
        f"human-review:item-{first.id}:2 of 3 reviewers agreed"
    )
    assert by_text["Returned it, the seams came apart."]["Rating"] == "1"
    code, _, err = run_cli(capsys, workspace, "export", "--output", str(exported))
    assert code == 2 and "exists; an export is a new file" in err

    # The next run's input: the pipeline's own reader finds the export beside the data, and its label rule
    # turns each exported Rating into the human label.
    input_folder = tmp_path / "input"
    input_folder.mkdir()
    shutil.copy(sample_csv, input_folder / "reviews.csv")
    shutil.copy(exported, input_folder / exported.name)
    sources, ignored = reviews_csv.find_sources(input_folder)
    assert [s.relative for s in sources] == [exported.name, "reviews.csv"] and not ignored
    source = sources[0]
    assert "Review Text" in reviews_csv.read_header(source)
    (chunk,) = list(reviews_csv.read_chunks(source, 100))
    label_ids = list(splits.row_codes(chunk.frame))
    expected = [
        features.LABEL_ID_BY_SENTIMENT[{v: k for k, v in features.SENTIMENT_NAMES.items()}[label]]
        for label in ("neutral", "negative")
    ]
    assert sorted(label_ids) == sorted(expected)


def test_unlabeled_reviews_from_a_file_keep_their_columns_and_a_human_label_overrides_the_rating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = Workspace.open(tmp_path / "run")
    reviews = tmp_path / "reviews.csv"
    reviews.write_text(
        "Clothing ID,Review Text,Rating,Class Name\n"
        "7,Fits well and looks great.,2,Dresses\n"
        "8,Nice colour.,4,Knits\n"
        "9,,5,Knits\n",
        encoding="utf-8",
    )
    code, out, _ = run_cli(capsys, workspace, "add", "--input", str(reviews), "--endpoint", "staging")
    assert code == 0 and "2 reviews read, 2 new" in out
    code, out, _ = run_cli(capsys, workspace, "add", "--input", str(reviews), "--endpoint", "staging")
    assert code == 0 and "2 reviews read, 0 new" in out
    with queue_of(workspace) as queue:
        first, second = queue.items()
        assert first.reason == "unlabeled" and first.labels_per_item == 1 and first.predicted is None
        queue.label(first.id, "alice", "positive")
        queue.label(second.id, "alice", "positive")
    output = tmp_path / "labels.csv"
    assert run_cli(capsys, workspace, "export", "--output", str(output))[0] == 0
    rows = list(csv.DictReader(output.open(newline="", encoding="utf-8")))
    assert [(r["Clothing ID"], r["Rating"], r["Class Name"]) for r in rows] == [
        ("7", "5", "Dresses"),  # rating 2 (negative) disagreed with the human: the label wins
        ("8", "4", "Knits"),  # rating 4 agrees: kept
    ]

    missing = tmp_path / "texts.csv"
    missing.write_text("Text\nhello\n", encoding="utf-8")
    code, _, err = run_cli(capsys, workspace, "add", "--input", str(missing))
    assert code == 2 and f"{missing}: no 'Review Text' column (found: 'Text')" in err
    code, _, err = run_cli(capsys, workspace, "add", "--input", str(tmp_path / "nowhere.csv"))
    assert code == 2 and "nowhere.csv: no such file" in err


def test_majority_waits_for_enough_answers_and_breaks_no_tie() -> None:
    from pipelines.local.review_queue import Label

    def answers(*labels: str) -> list[Label]:
        return [Label(f"r{i}", label, "t") for i, label in enumerate(labels)]

    assert majority(answers("positive"), 1) == "positive"
    assert majority(answers("positive", "positive"), 3) is None
    assert majority(answers("positive", "negative"), 2) is None
    assert majority(answers("positive", "negative", "positive"), 2) == "positive"


def test_the_quality_sample_is_the_same_on_every_fill_and_near_its_share() -> None:
    keys = [f"capture:shop-prod:event-{i}:0" for i in range(4000)]
    chosen = [key for key in keys if sampled(key, 0.05)]
    assert chosen == [key for key in keys if sampled(key, 0.05)]
    assert 150 < len(chosen) < 250
    assert not any(sampled(key, 0.0) for key in keys) and all(sampled(key, 1.0) for key in keys)


def test_a_file_that_is_not_a_queue_is_refused_by_name(tmp_path: Path) -> None:
    broken = tmp_path / "review.db"
    broken.write_bytes(b"not a database, just bytes" * 100)
    with pytest.raises(ReviewError, match=f"{broken} is not a readable review queue"):
        ReviewQueue(broken)
