"""The processing step on more than one instance: N instances together write exactly what one writes.

Each instance is run as SageMaker runs it, a process with the whole input and its own
``/opt/ml/config/resourceconfig.json``; the union of their outputs is compared with a single instance's, row by
row: splits, Feature Store records, rejects (with their reason and place) and the counts in the summaries.
"""

from __future__ import annotations

import json
from pathlib import Path

import features
import pandas as pd
import preprocess
import pyarrow.parquet as pq
import pytest

from tests.model_build.test_preprocess import SMALL, read_raw, run_ok, run_step, write_raw

OUTPUTS = (*features.SPLITS, preprocess.FEATURES)


def resource_config(folder: Path, index: int, count: int) -> Path:
    """The file SageMaker writes on instance ``index`` of ``count`` (hosts are called algo-1, algo-2, ...)."""
    path = folder / f"resourceconfig-{index}.json"
    hosts = [f"algo-{number}" for number in range(1, count + 1)]
    path.write_text(
        json.dumps({"current_host": hosts[index], "hosts": hosts, "network_interface_name": "eth0"})
    )
    return path


def run_instances(input_data: Path, output: Path, model: Path, count: int, *extra: str) -> list[Path]:
    """Every instance of a ``count``-instance job, each with its own output folder (as on its own machine)."""
    folders = []
    output.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        folder = output / f"instance-{index}"
        config = resource_config(output, index, count)
        run_ok(input_data, folder, model, "--resource-config", str(config), *extra)
        folders.append(folder)
    return folders


def union(folders: list[Path], output: str) -> pd.DataFrame:
    """Rows of one output across instances, in a fixed order, without the event time (each run has its own;
    only the Feature Store records carry it)."""
    frames = [
        pq.read_table(path).to_pandas() for folder in folders for path in (folder / output).glob("*.parquet")
    ]
    rows = pd.concat(frames, ignore_index=True)
    if output == preprocess.FEATURES:
        rows = rows.drop(columns=features.EVENT_TIME)
    return rows.sort_values("review_id", ignore_index=True)


def rejects(folders: list[Path]) -> pd.DataFrame:
    frames = [
        read_raw(path)
        for folder in folders
        for path in (folder / preprocess.REJECTS).glob("*.csv")
        if path.stat().st_size
    ]
    return pd.concat(frames, ignore_index=True).sort_values(["source_file", "source_row"], ignore_index=True)


def summaries(folders: list[Path]) -> list[dict]:
    return [
        json.loads(path.read_text())
        for folder in folders
        for path in (folder / preprocess.REJECTS).glob(f"{preprocess.SUMMARY_PREFIX}*.json")
    ]


@pytest.fixture(scope="module")
def mixed_input(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path) -> Path:
    """The sample as one big file, plus a second file repeating some of its rows (duplicates across files)."""
    folder = tmp_path_factory.mktemp("mixed-input")
    raw = read_raw(sample_csv)
    write_raw(raw, folder / "reviews.csv")
    write_raw(raw.iloc[::50], folder / "more" / "repeats.csv")
    return folder


@pytest.mark.parametrize("balance", ["true", "false"])
def test_three_instances_write_what_one_writes(
    tmp_path: Path, mixed_input: Path, minilm_dir: Path, balance: str
) -> None:
    extra = ("--balance-dataset", balance)
    (single,) = run_instances(mixed_input, tmp_path / "one", minilm_dir, 1, *extra)
    shared = run_instances(mixed_input, tmp_path / "three", minilm_dir, 3, *extra)

    for output in OUTPUTS:
        expected, actual = union([single], output), union(shared, output)
        assert len(expected) > 0
        pd.testing.assert_frame_equal(actual, expected, check_like=True, obj=output)
    pd.testing.assert_frame_equal(rejects(shared), rejects([single]))
    # The work is shared: every instance writes some rows, none writes them all.
    kept = [summary["kept"] for summary in summaries(shared)]
    (one,) = summaries([single])
    assert sum(kept) == one["kept"] and all(0 < count < one["kept"] for count in kept)
    assert sum(summary["read"] for summary in summaries(shared)) == one["read"]
    for name in ("rejected", "splits", "sentiments"):
        totals = pd.DataFrame([summary[name] for summary in summaries(shared)]).sum().to_dict()
        assert totals == one[name], name
    assert {s["instance"]["index"] for s in summaries(shared)} == {0, 1, 2}
    assert all(s["instance"]["rows_scanned"] == one["read"] for s in summaries(shared))
    # Names never collide in the output prefix the instances share on S3.
    names = [path.relative_to(folder) for folder in shared for path in folder.rglob("*") if path.is_file()]
    assert len(names) == len(set(names))


def test_an_instance_without_rows_writes_an_empty_summary_and_succeeds(
    tmp_path: Path, minilm_dir: Path
) -> None:
    raw = pd.DataFrame(
        {
            features.TEXT_COLUMN: ["Lovely dress, fits well.", "Awful, it tore."],
            features.RATING_COLUMN: ["5", "1"],
        }
    )
    write_raw(raw, tmp_path / "in" / "two.csv")
    folders = run_instances(
        tmp_path / "in", tmp_path / "out", minilm_dir, 4, *SMALL, "--balance-dataset", "false"
    )
    found = summaries(folders)
    assert sum(summary["kept"] for summary in found) == 2
    assert sum(summary["read"] == 0 for summary in found) >= 2  # 2 rows, 4 instances
    idle = next(folder for folder, summary in zip(folders, found, strict=True) if summary["read"] == 0)
    assert not list(idle.rglob("*.parquet")) and not list(idle.rglob("*.csv"))
    assert all((idle / output).is_dir() for output in OUTPUTS)


def test_a_broken_resource_config_is_refused_with_its_path(
    tmp_path: Path, sample_csv: Path, minilm_dir: Path
) -> None:
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-9", "hosts": ["algo-1", "algo-2"]}))
    result = run_step(sample_csv.parent, tmp_path / "out", minilm_dir, "--resource-config", str(config))
    assert result.returncode == 1
    assert str(config) in result.stderr and "current_host" in result.stderr
