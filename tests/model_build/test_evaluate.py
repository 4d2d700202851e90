"""The evaluation step under its SageMaker Processing contract, and the orientation of its metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import baselines
import evaluate
import pyarrow.parquet as pq
import pytest

from model_build.pipeline_spec import ACCURACY_JSON_PATH, EVALUATION_FILE, STEPS_SOURCE_DIR
from tests.model_build.review_splits import labelled_model, write_splits

STEPS_DIR = Path(__file__).resolve().parents[2] / STEPS_SOURCE_DIR


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path) -> Path:
    return labelled_model(tiny_roberta_dir, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def test_split(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path, tiny_roberta_dir: Path) -> Path:
    return write_splits(tmp_path_factory.mktemp("splits"), sample_csv, tiny_roberta_dir)["test"]


def pack(model_dir: Path, folder: Path) -> Path:
    """``model.tar.gz`` as SageMaker packs ``SM_MODEL_DIR``: the files at the archive's root."""
    folder.mkdir(parents=True)
    with tarfile.open(folder / "model.tar.gz", "w:gz") as archive:
        for path in model_dir.iterdir():
            archive.add(path, arcname=path.name)
    return folder


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "evaluate.py", *args], cwd=STEPS_DIR, capture_output=True, text=True, timeout=300
    )


def test_confusion_matrix_rows_are_the_true_sentiment() -> None:
    # Three negative reviews: one predicted right, one as neutral, one as positive; the rest right.
    y_true = [-1, -1, -1, 0, 1, 1]
    y_pred = [-1, 0, 1, 0, 1, 1]
    metrics = baselines.compute_metrics(y_true, y_pred)
    assert metrics["confusion_matrix_labels"] == [-1, 0, 1]
    assert metrics["confusion_matrix"] == [[1, 1, 1], [0, 1, 0], [0, 0, 2]]
    assert metrics["accuracy"]["value"] == pytest.approx(4 / 6)
    negative, neutral = metrics["per_class"]["negative"], metrics["per_class"]["neutral"]
    assert (negative["recall"], negative["precision"], negative["support"]) == (pytest.approx(1 / 3), 1.0, 3)
    assert (neutral["recall"], neutral["precision"], neutral["support"]) == (1.0, 0.5, 1)
    assert metrics["recall_macro"]["value"] == pytest.approx((1 / 3 + 1 + 1) / 3)
    assert metrics["precision_macro"]["value"] == pytest.approx((1 + 0.5 + 2 / 3) / 3)


def test_scores_model_tar_gz_under_the_processing_contract(
    tmp_path: Path, model_dir: Path, test_split: Path
) -> None:
    model_input = pack(model_dir, tmp_path / "input" / "model")
    output = tmp_path / "output" / "evaluation"
    result = run_script(
        "--model-path", str(model_input), "--test-data", str(test_split), "--output-data", str(output),
        "--max-seq-length", "128",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads((output / EVALUATION_FILE).read_text())
    value = report
    for key in ACCURACY_JSON_PATH.split("."):  # the path the pipeline's condition step reads
        value = value[key]
    metrics = report["metrics"]
    matrix = metrics["confusion_matrix"]
    test_rows = pq.read_table(test_split).num_rows
    assert sum(map(sum, matrix)) == test_rows == metrics["examples"]
    assert value == pytest.approx(sum(matrix[i][i] for i in range(3)) / test_rows)
    true_counts = [metrics["per_class"][name]["support"] for name in ("negative", "neutral", "positive")]
    assert [sum(row) for row in matrix] == true_counts
    assert set(metrics) >= {"f1_macro", "precision_macro", "recall_macro", "per_class"}
    assert (output / evaluate.CONFUSION_MATRIX_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The saved model folder itself is accepted too, with the same result.
    again = tmp_path / "again"
    assert (
        evaluate.main(
            ["--model-path", str(model_dir), "--test-data", str(test_split), "--output-data", str(again)]
        )
        == 0
    )
    assert json.loads((again / EVALUATION_FILE).read_text()) == report


def test_empty_test_split_or_missing_model_fail_clearly(
    tmp_path: Path, model_dir: Path, test_split: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    pq.write_table(pq.read_table(test_split).slice(0, 0), empty / "part.parquet")
    result = run_script(
        "--model-path", str(model_dir), "--test-data", str(empty), "--output-data", str(tmp_path / "o")
    )
    assert result.returncode != 0
    assert "has no rows" in result.stderr
    assert not (tmp_path / "o").exists()

    arguments = ["--test-data", str(test_split), "--output-data", str(tmp_path / "o")]
    assert evaluate.main(["--model-path", str(tmp_path / "nothing"), *arguments]) != 0
    assert not (tmp_path / "o").exists()
