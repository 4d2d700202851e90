"""Human labels through the whole loop, locally: captured traffic with unsure answers -> the review queue ->
labels from several reviewers (one disagreement) -> export into the pipeline's input -> a local pipeline run
that trains and tests on them (none dropped by balancing) -> the registered version's lineage counts them.

The run is the one ``make run`` makes, with the small settings of ``test_local_pipeline.py`` (one epoch, two
steps, the gate open: what is checked is where the labels go, not what the model learns).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import features
import pandas as pd
import pyarrow.parquet as pq
import pytest

from model_build.pipeline_spec import PROCESS
from pipelines.cli import main
from pipelines.commands.review import queue_of
from pipelines.local.executions import ExecutionStore
from pipelines.local.review_queue import LABEL_SOURCE_COLUMN
from pipelines.local.workspace import Workspace
from tests.pipelines.test_local_pipeline import OPEN_GATE, SMALL, cli


def review(capsys: pytest.CaptureFixture[str], workspace: Workspace, *argv: str) -> str:
    code = main(["review", *argv, "--run-dir", str(workspace.root)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_people_label_unsure_answers_and_the_next_run_trains_on_them(
    served: tuple[Workspace, str, Path], capsys: pytest.CaptureFixture[str], sample_csv: Path
) -> None:
    workspace, _, _ = served
    review(capsys, workspace, "fill", "--since", "2h")
    with queue_of(workspace) as queue:
        unsure = {item.text: item for item in queue.items() if item.reason == "low_confidence"}
    runs_small = unsure["Runs small, the fabric is fine."]  # the model said neutral, 0.41
    seams = unsure["Returned it, the seams came apart."]  # negative, 0.55
    for reviewer, label in (
        ("alice", "negative"),
        ("bob", "neutral"),
        ("carol", "negative"),
    ):  # a disagreement
        review(capsys, workspace, "label", str(runs_small.id), label, "--reviewer", reviewer)
    for reviewer in ("alice", "bob", "carol"):
        review(capsys, workspace, "label", str(seams.id), "negative", "--reviewer", reviewer)
    out = review(capsys, workspace, "export")
    assert "2 human labels written to" in out

    # The pipeline's input: the sample next to the export, in the data bucket's raw-reviews prefix.
    raw = workspace.local_path(workspace.raw_reviews_uri)
    shutil.copy(sample_csv, raw / "reviews.csv")
    (export,) = raw.glob("human-labels-*.csv")
    run = cli(
        workspace.root,
        "run",
        "--local",
        *SMALL,
        *OPEN_GATE,
        "--param",
        f"InputDataUrl={workspace.raw_reviews_uri}",
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "all 2 human labels kept" in run.stdout  # balancing says it kept them (both are negative)

    (record,) = ExecutionStore(workspace.executions_dir).list()
    outputs = record.step(PROCESS).outputs
    splits = pd.concat(
        [
            pq.read_table(workspace.local_path(outputs[split])).to_pandas()
            for split in ("train", "validation", "test")
        ]
    )
    by_text = {
        text: features.SENTIMENT_NAMES[int(sentiment)]
        for text, sentiment in zip(splits["review_body"], splits["sentiment"], strict=True)
    }
    assert (
        by_text["Runs small, the fabric is fine."] == "negative"
    )  # the people's answer, not the model's neutral
    assert by_text["Returned it, the seams came apart."] == "negative"
    (summary_file,) = workspace.local_path(outputs["rejects"]).glob("summary-*.json")
    summary = json.loads(summary_file.read_text())
    assert summary["human_labels"]["kept"] == 2 and sum(summary["human_labels"]["splits"].values()) == 2
    assert summary["balancing"]["human_labels"] == {"negative": 2, "neutral": 0, "positive": 0}
    assert summary["rejected"]["balanced_out"] == sum(summary["balancing"]["dropped"].values()) > 0

    described = json.loads(cli(workspace.root, "registry", "describe", "1").stdout)
    assert described["CustomerMetadataProperties"]["DataCheckHumanLabels"] == "2"
    rows = pd.read_csv(export, dtype=str, keep_default_na=False)
    assert rows[LABEL_SOURCE_COLUMN].str.startswith("human-review:item-").all()
