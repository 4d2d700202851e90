"""The evaluation step writes the monitoring baseline, and the monitoring job reads it back."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import drift
import pyarrow.parquet as pq
import pytest

from model_build.code_upload import CodeSet
from model_build.pipeline_spec import STEPS_SOURCE_DIR
from pipelines.local.workspace import REPO_ROOT
from tests.model_build import monitoring_windows as w
from tests.model_build.review_splits import labelled_model, write_splits

STEPS_DIR = Path(__file__).resolve().parents[2] / STEPS_SOURCE_DIR


@pytest.fixture(scope="module")
def model_and_splits(
    tmp_path_factory: pytest.TempPathFactory, sample_csv: Path, tiny_roberta_dir: Path
) -> tuple[Path, dict]:
    model = labelled_model(tiny_roberta_dir, tmp_path_factory.mktemp("model"))
    return model, write_splits(tmp_path_factory.mktemp("splits"), sample_csv, tiny_roberta_dir)


def evaluate(model: Path, splits: dict, output: Path, *extra: str) -> None:
    result = subprocess.run(
        [sys.executable, "evaluate.py", "--model-path", str(model), "--test-data", str(splits["test"]),
         "--train-data", str(splits["train"]), "--output-data", str(output), "--max-seq-length", "32",
         *extra],
        cwd=STEPS_DIR, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def evaluated(
    tmp_path_factory: pytest.TempPathFactory, model_and_splits: tuple[Path, dict]
) -> tuple[Path, dict]:
    model, splits = model_and_splits
    output = tmp_path_factory.mktemp("evaluation")
    evaluate(model, splits, output)
    return output, splits


def test_with_the_data_checks_class_shares_each_class_weighs_its_share_of_the_data(
    model_and_splits: tuple[Path, dict], tmp_path: Path
) -> None:
    model, splits = model_and_splits
    shares = {"negative": 0.1, "neutral": 0.2, "positive": 0.7}
    report = tmp_path / "data_check.json"
    report.write_text(json.dumps({"labels": {"by_sentiment": {n: {"share": v} for n, v in shares.items()}}}))
    evaluate(model, splits, tmp_path / "out", "--class-shares", str(report))
    document = json.loads((tmp_path / "out" / drift.BASELINE_FOLDER / "baseline.json").read_text())
    evaluation = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    matrix = evaluation["metrics"]["confusion_matrix"]
    assert list(document["model"]["test_label_counts"].values()) == [sum(row) for row in matrix]
    assert document["model"]["weighted_to_class_shares"] == shares
    reviews = document["profile"]["reviews"]
    assert reviews == sum(sum(row) for row in matrix)
    for name, share in shares.items():  # the true labels in the data's shares, on the test split's scale
        assert document["label_counts"][name] == pytest.approx(share * reviews, abs=1)
    # the predicted classes: each row of the confusion matrix weighted by its class's weight
    weights = document["model"]["class_weights"]
    expected = [
        sum(weights[n] * row[j] for n, row in zip(drift.SENTIMENT_NAMES, matrix, strict=True))
        for j in range(3)
    ]
    assert list(document["profile"]["predicted_counts"].values()) == pytest.approx(expected, abs=2)

    missing = tmp_path / "nothing.json"
    result = subprocess.run(
        [sys.executable, "evaluate.py", "--model-path", str(model), "--test-data", str(splits["test"]),
         "--output-data", str(tmp_path / "o2"), "--class-shares", str(missing)],
        cwd=STEPS_DIR, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 2 and f"--class-shares {missing}: no data check report" in result.stderr


def test_the_baseline_carries_exactly_the_monitoring_and_human_loop_jobs_and_what_they_import() -> None:
    steps = REPO_ROOT / STEPS_SOURCE_DIR
    monitor = CodeSet.script(steps, "monitor.py", ("requirements.txt",)).names()
    human_loops = CodeSet.script(steps, "human_loops.py", ()).names()
    assert tuple(sorted({*monitor, *human_loops})) == tuple(sorted(drift.CODE_FILES))


def test_the_baseline_profiles_the_test_split(evaluated: tuple[Path, dict]) -> None:
    output, splits = evaluated
    folder = output / drift.BASELINE_FOLDER
    names = ["baseline.json", "code", "known_token_ids.json", "tokenizer.json"]
    assert sorted(p.name for p in folder.iterdir()) == names
    assert sorted(p.name for p in (folder / "code").iterdir()) == sorted(drift.CODE_FILES)
    document = json.loads((folder / "baseline.json").read_text())
    evaluation = json.loads((output / "evaluation.json").read_text())
    test = pq.read_table(splits["test"])
    assert document["profile"]["reviews"] == test.num_rows == evaluation["metrics"]["examples"]
    assert document["max_seq_length"] == 32 and document["known_tokens_source"] == "train split"
    # the true labels are the test split's; the predicted ones the model's (the confusion matrix's columns)
    matrix = evaluation["metrics"]["confusion_matrix"]
    assert list(document["label_counts"].values()) == [sum(row) for row in matrix]
    assert list(document["profile"]["predicted_counts"].values()) == [
        sum(col) for col in zip(*matrix, strict=True)
    ]
    assert 1 / 3 <= document["profile"]["mean_top_probability"] <= 1
    # lengths before truncation (the split's ids stop at 128): a review over 32 tokens counts as truncated
    lengths = [len(ids) for ids in test.column("input_ids").to_pylist()]
    assert document["profile"]["truncated_share"] == pytest.approx(
        sum(n > 32 for n in lengths) / len(lengths)
    )
    assert 0 < document["profile"]["truncated_share"] < 1


def test_the_test_reviews_sent_as_traffic_are_no_drift(evaluated: tuple[Path, dict], tmp_path: Path) -> None:
    output, splits = evaluated
    folder = output / drift.BASELINE_FOLDER
    baseline, _ = drift.read_baseline(folder)
    texts = pq.read_table(splits["test"]).column("review_body").to_pylist()
    answers = [
        (name, baseline.profile.mean_top_probability or 0.5)
        for name, count in baseline.profile.predicted_counts.items()
        for _ in range(count)
    ]
    w.write_window(tmp_path / "captures", texts, answers, datetime.now(UTC))
    # the copy of the job in the baseline, run as the schedule on AWS runs it
    result = subprocess.run(
        [sys.executable, str(folder / "code" / "monitor.py"), "--baseline", str(folder),
         "--captures", str(tmp_path / "captures"), "--output-data", str(tmp_path / "o"),
         "--since", "1h", "--no-progress", "--thresholds", '{"min_reviews": 5}'],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["verdict"] == "no_drift", report["violations"]
    checks = {check["threshold"]: check["value"] for check in report["checks"]}
    assert checks["max_length_psi"] == pytest.approx(0, abs=1e-9)
    assert checks["max_unseen_token_share_increase"] == pytest.approx(0, abs=1e-9)
