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

from model_build.pipeline_spec import STEPS_SOURCE_DIR
from tests.model_build import monitoring_windows as w
from tests.model_build.review_splits import labelled_model, write_splits

STEPS_DIR = Path(__file__).resolve().parents[2] / STEPS_SOURCE_DIR


@pytest.fixture(scope="module")
def evaluated(
    tmp_path_factory: pytest.TempPathFactory, sample_csv: Path, tiny_roberta_dir: Path
) -> tuple[Path, dict]:
    model = labelled_model(tiny_roberta_dir, tmp_path_factory.mktemp("model"))
    splits = write_splits(tmp_path_factory.mktemp("splits"), sample_csv, tiny_roberta_dir)
    output = tmp_path_factory.mktemp("evaluation")
    result = subprocess.run(
        [sys.executable, "evaluate.py", "--model-path", str(model), "--test-data", str(splits["test"]),
         "--train-data", str(splits["train"]), "--output-data", str(output), "--max-seq-length", "32"],
        cwd=STEPS_DIR, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return output, splits


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
