"""``python -m pipelines predict --input --output --version``: a registered version scores a whole file.

The tiny RoBERTa, packed with the repository's handler and registered in a fresh run folder, scores the
sample (every row kept, each row's id and columns unchanged) and a file of bad rows (counted by reason, the
run not aborted); the command runs as a user runs it, in a subprocess.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_deploy.local.state import ServerInfo
from pipelines import cli
from pipelines.local.workspace import Workspace
from tests.model_deploy.local.conftest import REPO_ROOT, register


def predict(run_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", "predict", *arguments, "--run-dir", str(run_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, model_archive: Path) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    assert register(Workspace.open(folder), model_archive) == 1
    return folder


def read(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(2**31 - 1)  # the long review of the bad-rows file is kept in full
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return list(csv.DictReader(handle))


def test_the_sample_is_scored_row_for_row(run_dir, sample_csv, tmp_path):
    output = tmp_path / "scored.csv"
    done = predict(run_dir, "--input", str(sample_csv), "--output", str(output), "--version", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    rows, inputs = read(output), read(sample_csv)
    assert len(rows) == len(inputs) == 2400
    assert [row[""] for row in rows] == [row[""] for row in inputs]  # the sample's id column, in order
    assert all(row["Class Name"] == source["Class Name"] for row, source in zip(rows, inputs, strict=True))
    empty = sum(1 for row in inputs if not row["Review Text"].strip())
    assert sum(row["status"] == "unscorable" for row in rows) == empty
    scored = [row for row in rows if row["status"] == "scored"]
    assert {row["sentiment"] for row in scored} <= {"negative", "neutral", "positive"}
    assert all(
        abs(sum(float(row[f"probability_{s}"]) for s in ("negative", "neutral", "positive")) - 1) < 1e-4
        for row in scored
    )
    assert f"Scored {len(scored)} of 2400 rows into {output}" in done.stdout
    assert f"{empty} rows could not be scored" in done.stdout and "the review text is empty" in done.stdout
    assert "scoring" in done.stderr  # the progress bar


def test_bad_rows_are_counted_kept_and_do_not_stop_the_run(run_dir, tmp_path):
    source = tmp_path / "bad.csv"
    long_review = "word " * 250_000  # 1.25 M characters: the handler's limit is 1 M
    source.write_bytes(
        b"review_id,Review Text\n"
        b"r1,Lovely soft fabric and a great fit\n"
        b"r2,\n"
        b"r3,one,too many\n" + f"r4,{long_review}\n".encode() + b"r5,caf\xe9 au lait stain on arrival\n"
        b"r6,Runs small and the zip broke\n"
    )
    output = tmp_path / "scored.csv"
    done = predict(
        run_dir, "--input", str(source), "--output", str(output), "--version", "1",
        "--id-column", "review_id", "--batch-size", "4",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read(output)
    assert [row["review_id"] for row in rows] == ["r1", "r2", "r3", "r4", "r5", "r6"]
    assert [row["status"] for row in rows] == ["scored", *["unscorable"] * 4, "scored"]
    reasons = {row["review_id"]: row["reason"] for row in rows}
    assert reasons["r2"] == "the review text is empty"
    assert reasons["r3"] == "line 4: the row has 3 fields, the header 2"
    assert reasons["r4"] == "the review text has 1250000 characters; at most 1000000"
    assert reasons["r5"].startswith("the review text is not valid Unicode text")
    assert "Scored 2 of 6 rows" in done.stdout and "4 rows could not be scored" in done.stdout
    assert output.read_bytes().count(b"caf\xe9 au lait") == 1  # the bad bytes kept as they came


def test_a_missing_id_column_or_version_is_a_clear_usage_error(run_dir, sample_csv, tmp_path, capsys):
    output = str(tmp_path / "o.csv")
    base = ["predict", "--input", str(sample_csv), "--output", output, "--run-dir", str(run_dir)]
    assert cli.main([*base, "--version", "7"]) == 2
    assert "has no version 7" in capsys.readouterr().err
    assert cli.main(["predict", "--input", str(sample_csv), "--version", "1", "--run-dir", str(run_dir)]) == 2
    assert "needs both --input FILE and --output FILE" in capsys.readouterr().err
    assert cli.main(["predict", "a review", "--input", str(sample_csv), "--run-dir", str(run_dir)]) == 2
    assert "--input score a file" in capsys.readouterr().err
    assert cli.main(["predict", "a review", "--version", "1", "--run-dir", str(run_dir)]) == 2
    assert (
        "reviews on the command line go to an endpoint, and --version score a file" in capsys.readouterr().err
    )


def test_an_endpoint_that_serves_nothing_is_refused_before_scoring(run_dir, sample_csv, tmp_path, capsys):
    workspace = Workspace.open(run_dir)
    # a live process in the server's file: this test's own, so that the server counts as running
    ServerInfo(os.getpid(), "http://127.0.0.1:9", "token", "now").write(workspace.endpoints_dir)
    try:
        output = tmp_path / "o.csv"
        base = ["predict", "--input", str(sample_csv), "--output", str(output), "--run-dir", str(run_dir)]
        assert cli.main([*base, "--endpoint", "nosuch"]) == 2
        assert "endpoint nosuch serves no version; endpoints that do: none yet" in capsys.readouterr().err
        assert not output.exists()
    finally:
        ServerInfo.remove(workspace.endpoints_dir, os.getpid())
