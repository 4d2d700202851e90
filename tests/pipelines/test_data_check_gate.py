"""The data check as the real pipeline's first step: a broken schema or an empty column stops the run there.

The local runner runs the real description (``PIPELINE``) on a bad copy of the sample; the run must fail at
``CheckData`` with the check, the value and the threshold in its reason (read from the job's exit message,
as SageMaker's ``ExitMessage``), and ``ProcessReviews`` must never start.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from model_build import pipeline_spec as ps
from pipelines.local.executions import Status
from pipelines.local.workspace import Workspace
from pipelines.runners.local import LocalRunner


def rewrite_sample(sample_csv: Path, target: Path, drop: str | None = None, empty: str | None = None) -> Path:
    with sample_csv.open(newline="", encoding="utf-8") as source:
        reader = csv.DictReader(source)
        header = [name for name in reader.fieldnames or [] if name != drop]
        rows = [{**row, **({empty: ""} if empty else {})} for row in reader]
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return target


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"drop": "Rating"}, "- the required column Rating is missing from no-rating.csv"),
        (
            {"empty": "Division Name"},
            "- Division Name is empty in 100% of rows (2400 of 2400), above the 50% allowed "
            "(MaxMissingShare, --max-missing-share)",
        ),
    ],
    ids=["broken-schema", "empty-column"],
)
def test_bad_input_stops_the_pipeline_at_the_data_check(sample_csv, tmp_path, change, expected):
    name = "no-rating.csv" if "drop" in change else "empty-division.csv"
    bad = rewrite_sample(sample_csv, tmp_path / name, **change)
    console = io.StringIO()
    record = LocalRunner(Workspace.open(tmp_path / "run"), console=console).run({"InputDataUrl": str(bad)})
    assert record.status == Status.FAILED
    assert [(step.name, step.status) for step in record.steps] == [(ps.CHECK_DATA, Status.FAILED)]
    reason = record.failure_reason or ""
    assert reason.startswith(f"{ps.CHECK_DATA} failed: check_data.py exited with code 1")
    assert "the pipeline stops before processing" in reason and expected in reason
    assert f"] {ps.CHECK_DATA}:" in console.getvalue() and f"] {ps.PROCESS}:" not in console.getvalue()


def test_a_header_that_is_not_utf8_stops_the_pipeline_at_the_data_check_with_exit_2(sample_csv, tmp_path):
    bad = tmp_path / "h.csv"
    bad.write_bytes(sample_csv.read_bytes().replace(b"Clothing ID", b"Clothing \xfcID", 1))
    console = io.StringIO()
    record = LocalRunner(Workspace.open(tmp_path / "run"), console=console).run({"InputDataUrl": str(bad)})
    assert [(step.name, step.status) for step in record.steps] == [(ps.CHECK_DATA, Status.FAILED)]
    reason = record.failure_reason or ""
    assert reason.startswith(f"{ps.CHECK_DATA} failed: check_data.py exited with code 2")
    assert "h.csv: the header is not valid UTF-8 (byte 0xfc at offset" in reason
    assert "Traceback" not in console.getvalue()
