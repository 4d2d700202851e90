"""The local runner runs ``ProcessingInstanceCount`` instances, as SageMaker does, into one output prefix.

The real processing step on the sample, alone in a pipeline of its own: one instance, then three. Each of the
three gets its own container folder and ``resourceconfig.json``; their outputs land side by side under the
step's S3 prefix, and together hold the same rows as the single instance wrote.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from model_build.pipeline_spec import PIPELINE, PROCESS
from pipelines.local.executions import Status
from pipelines.local.workspace import Workspace
from pipelines.runners.local import LocalRunner, processing_hosts

# The step alone: without the data check before it, so nothing for it to wait on.
PROCESS_ONLY = dataclasses.replace(
    PIPELINE, steps=(dataclasses.replace(PIPELINE.step(PROCESS), depends_on=()),)
)


def run_processing(run_dir: Path, sample_csv: Path, minilm_dir: Path, instances: int):
    workspace = Workspace.open(run_dir)
    runner = LocalRunner(workspace, PROCESS_ONLY, console=io.StringIO())
    overrides = {
        "InputDataUrl": str(sample_csv.parent),
        "PretrainedModel": str(minilm_dir),
        "ProcessingInstanceCount": instances,
    }
    record = runner.run(overrides)
    assert record.status == Status.SUCCEEDED, record.failure_reason
    return workspace, record.step(PROCESS)


def review_ids(workspace: Workspace, step, output: str) -> list[str]:
    folder = workspace.local_path(step.outputs[output])
    return sorted(
        id_ for path in folder.glob("*.parquet") for id_ in pq.read_table(path)["review_id"].to_pylist()
    )


def test_three_local_instances_share_the_rows_of_one(
    tmp_path: Path, sample_csv: Path, minilm_dir: Path
) -> None:
    one_workspace, one = run_processing(tmp_path / "one", sample_csv, minilm_dir, 1)
    workspace, three = run_processing(tmp_path / "three", sample_csv, minilm_dir, 3)

    for output in ("train", "validation", "test", "features"):
        assert review_ids(workspace, three, output) == review_ids(one_workspace, one, output), output
        names = sorted(path.name for path in workspace.local_path(three.outputs[output]).glob("*.parquet"))
        assert [name.rsplit("-", 1)[-1] for name in names] == ["i0.parquet", "i1.parquet", "i2.parquet"]
    rejects = workspace.local_path(three.outputs["rejects"])
    summaries = [json.loads(path.read_text()) for path in sorted(rejects.glob("summary-*.json"))]
    assert [summary["instance"]["index"] for summary in summaries] == [0, 1, 2]
    kept = sum(summary["kept"] for summary in summaries)
    # Every record reached the Feature Store stand-in once, whichever instance put it.
    assert (
        three.detail["feature_store_records_ingested"] == kept == one.detail["feature_store_records_ingested"]
    )
    assert [Path(log).name for log in three.detail["instance_logs"]] == [
        f"{PROCESS}-algo-{n}.log" for n in (1, 2, 3)
    ]
    assert all(Path(log).is_file() for log in three.detail["instance_logs"])


@pytest.mark.parametrize("count", [0, -1, "3", True])
def test_an_instance_count_that_is_not_a_positive_integer_is_refused(count: object) -> None:
    with pytest.raises(ValueError, match="ProcessingInstanceCount"):
        processing_hosts(count)
