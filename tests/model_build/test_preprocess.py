"""The processing step, run as SageMaker runs it: ``python3 preprocess.py --args`` in a subprocess.

Runs on the sample data with the bundled MiniLM and with a tiny RoBERTa tokenizer, on shards of it, on
hand-made bad inputs, and against a local HTTP stand-in of the Feature Store runtime API.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import arguments
import features
import numpy as np
import pandas as pd
import preprocess
import pyarrow.parquet as pq
import pytest

SCRIPT = Path(preprocess.__file__)
TEXT, RATING = features.TEXT_COLUMN, features.RATING_COLUMN
SHARDS = ("shard-a.csv", "nested/shard-b.csv.gz")


def run_step(
    input_data: Path, output_data: Path, model: Path | str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        str(SCRIPT),
        "--input-data",
        str(input_data),
        "--output-data",
        str(output_data),
    ]
    command += ["--pretrained-model", str(model), *extra]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})}, check=False
    )


def run_ok(*args, **kwargs) -> subprocess.CompletedProcess[str]:
    result = run_step(*args, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def read_raw(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def write_raw(frame: pd.DataFrame, path: Path) -> Path:
    """Write rows with their original header (the unnamed index column keeps its empty name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = frame.rename(columns={"Unnamed: 0": ""})
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)
    return path


def splits_of(output: Path) -> pd.DataFrame:
    frames = [pq.read_table(output / split).to_pandas() for split in features.SPLITS]
    return pd.concat(frames, ignore_index=True)


def summary_of(output: Path) -> dict:
    (summary,) = (output / preprocess.REJECTS).glob(f"{preprocess.SUMMARY_PREFIX}*.json")
    return json.loads(summary.read_text())


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path, minilm_dir: Path) -> Path:
    """The whole sample, MiniLM, no balancing: every valid row goes through."""
    output = tmp_path_factory.mktemp("sample-run")
    run_ok(sample_csv.parent, output, minilm_dir, "--balance-dataset", "False")
    return output


def test_counts_add_up_and_nothing_is_lost(sample_run: Path, sample_csv: Path) -> None:
    raw = read_raw(sample_csv)
    summary = summary_of(sample_run)
    rejects = pd.concat(
        [read_raw(path) for path in (sample_run / "rejects").glob("*.csv")], ignore_index=True
    )
    kept = splits_of(sample_run)

    assert summary["read"] == len(raw)
    assert summary["read"] == summary["kept"] + sum(summary["rejected"].values())
    assert summary["kept"] == len(kept) == sum(summary["splits"].values())
    assert len(rejects) == sum(summary["rejected"].values())
    assert summary["rejected"]["balanced_out"] == 0
    # The sample's deliberately bad rows: no text, or a rating that is not 1-5.
    expected_missing = raw[TEXT].str.strip().eq("")
    assert summary["rejected"]["missing_review_text"] == expected_missing.sum() > 0
    assert summary["rejected"]["invalid_rating"] > 0
    # Rows missing other columns are kept: the course's dropna() lost every review without a title.
    assert (raw.loc[~expected_missing, "Title"] == "").sum() > 0
    kept_bodies = set(kept["review_body"])
    assert all(body in kept_bodies for body in raw.loc[raw["Title"].eq("") & ~expected_missing, TEXT][:5])
    # Each reject is its raw row, unchanged, with where it came from and why.
    for _, reject in rejects.iterrows():
        original = raw.iloc[int(reject["source_row"]) - 1]
        assert reject[list(raw.columns)].tolist() == original.tolist()
        assert reject["source_file"] == sample_csv.name
    assert set(rejects["reject_reason"]) <= set(preprocess.REJECT_REASONS)


def test_outputs_have_the_contract_schema(sample_run: Path, minilm_dir: Path) -> None:
    from transformers import AutoTokenizer

    for split in features.SPLITS:
        table = pq.read_table(sample_run / split)
        assert table.schema.equals(preprocess.SPLIT_SCHEMA), split
        assert set(table["split_type"].to_pylist()) == {split}
    records = pq.read_table(sample_run / "features")
    assert tuple(records.column_names) == features.FEATURE_NAMES
    kept = splits_of(sample_run).set_index("review_id")
    record_frame = records.to_pandas().set_index("review_id")
    assert sorted(record_frame.index) == sorted(kept.index)
    for review_id, record in record_frame.head(50).iterrows():
        assert json.loads(record["input_ids"]) == kept.loc[review_id, "input_ids"].tolist()
        assert record["date"] == kept.loc[review_id, "date"]
    assert kept["date"].nunique() == 1 and kept["date"].iloc[0].endswith("Z")
    assert set(zip(kept["sentiment"], kept["label_id"], strict=True)) == {(-1, 0), (0, 1), (1, 2)}

    # Unpadded, truncated, special tokens included: exactly what the transformers tokenizer gives.
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    expected = tokenizer(kept["review_body"].tolist(), truncation=True, max_length=128)["input_ids"]
    assert [ids.tolist() for ids in kept["input_ids"]] == expected
    lengths = kept["input_ids"].map(len)
    assert lengths.max() == 128 and lengths.min() < 128
    assert all(
        mask.tolist() == [1] * len(ids)
        for ids, mask in zip(kept["input_ids"], kept["attention_mask"], strict=True)
    )


def test_splits_are_disjoint_and_stratified(sample_run: Path) -> None:
    kept = splits_of(sample_run)
    assert kept["review_id"].is_unique  # disjoint: no review in two splits
    ratios = dict(zip(features.SPLITS, (0.90, 0.05, 0.05), strict=True))
    for sentiment, rows in kept.groupby("sentiment"):
        shares = rows["split_type"].value_counts(normalize=True)
        # Hash cuts are stratified in expectation; the tolerance is about 3 standard deviations per class.
        tolerance = 3 * np.sqrt(0.9 * 0.1 / len(rows))
        assert abs(shares["train"] - ratios["train"]) < tolerance, (sentiment, shares.to_dict())
        assert shares.get("validation", 0) > 0 and shares.get("test", 0) > 0, (sentiment, shares.to_dict())


def test_shards_give_the_same_union_as_one_run_and_ids_are_stable(
    tmp_path: Path, sample_csv: Path, sample_run: Path, tiny_roberta_dir: Path
) -> None:
    """Two instances each with half the files (one gzipped) == one run; ids survive renames and re-writes.

    Runs with the tiny RoBERTa at another max length, which also checks RoBERTa's tokens.
    """
    from transformers import AutoTokenizer

    raw = read_raw(sample_csv)
    half = len(raw) // 2
    common = ("--balance-dataset", "no", "--max-seq-length", "64")
    for index, rows in enumerate((raw.iloc[:half], raw.iloc[half:])):
        write_raw(rows, tmp_path / f"in-{index}" / SHARDS[index])
        run_ok(tmp_path / f"in-{index}", tmp_path / f"out-{index}", tiny_roberta_dir, *common)
        write_raw(rows, tmp_path / "in-both" / SHARDS[index])
    run_ok(tmp_path / "in-both", tmp_path / "out-both", tiny_roberta_dir, *common, "--chunk-size", "97")

    def by_id(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.set_index("review_id").sort_index()
        return frame.assign(input_ids=frame["input_ids"].map(list))[["split_type", "label_id", "input_ids"]]

    shards = pd.concat([splits_of(tmp_path / f"out-{index}") for index in range(2)])
    both = splits_of(tmp_path / "out-both")
    pd.testing.assert_frame_equal(by_id(shards), by_id(both))
    # Another file name, tokenizer, chunk size and CSV quoting: the same ids and splits as the MiniLM run.
    columns = ["split_type", "label_id"]
    pd.testing.assert_frame_equal(by_id(both)[columns], by_id(splits_of(sample_run))[columns])

    # Names never collide across instances: each shard's files, its summary too, are named after its input.
    names = [
        {path.relative_to(tmp_path / f"out-{i}").as_posix() for path in (tmp_path / f"out-{i}").rglob("*.*")}
        for i in range(2)
    ]
    assert names[0] and names[1] and not names[0] & names[1]

    tokenizer = AutoTokenizer.from_pretrained(tiny_roberta_dir)
    expected = tokenizer(both["review_body"].tolist(), truncation=True, max_length=64)["input_ids"]
    assert [ids.tolist() for ids in both["input_ids"]] == expected
    assert {ids[0] for ids in both["input_ids"]} == {tokenizer.bos_token_id}
    assert {ids[-1] for ids in both["input_ids"]} == {tokenizer.eos_token_id}
    assert both["input_ids"].map(len).max() == 64


def test_balancing_is_exact(tmp_path: Path, sample_csv: Path, minilm_dir: Path, sample_run: Path) -> None:
    result = run_ok(sample_csv.parent, tmp_path / "out", minilm_dir)  # --balance-dataset defaults to true
    summary = summary_of(tmp_path / "out")
    assert "balanced_out" in result.stdout and f"read {len(read_raw(sample_csv))} rows" in result.stdout
    assert len(set(summary["sentiments"].values())) == 1, summary["sentiments"]
    assert summary["read"] == summary["kept"] + sum(summary["rejected"].values())
    smallest = min(summary_of(sample_run)["sentiments"].values())
    assert summary["kept"] == 3 * smallest
    assert summary["rejected"]["balanced_out"] == summary_of(sample_run)["kept"] - 3 * smallest
    assert set(splits_of(tmp_path / "out")["review_id"]) < set(splits_of(sample_run)["review_id"])


def test_duplicates_are_rejected_once(tmp_path: Path, sample_csv: Path, minilm_dir: Path) -> None:
    raw = read_raw(sample_csv).head(40)
    write_raw(pd.concat([raw, raw.iloc[[3]]]), tmp_path / "in" / "a.csv")
    write_raw(raw.iloc[[5, 6]], tmp_path / "in" / "b.csv")  # the same rows in another file
    run_ok(tmp_path / "in", tmp_path / "out", minilm_dir, "--balance-dataset", "false")
    summary = summary_of(tmp_path / "out")
    assert summary["read"] == 43
    assert summary["rejected"]["duplicate_review"] == 3
    assert summary["read"] == summary["kept"] + sum(summary["rejected"].values())
    rejects = read_raw(next((tmp_path / "out" / "rejects").glob("b-*.csv")))
    assert rejects["reject_reason"].tolist() == ["duplicate_review"] * 2


# ------------------------------------------------------------------------------------------ bad input


def _no_rating(folder: Path, raw: pd.DataFrame) -> None:
    write_raw(raw.drop(columns=[RATING]).head(5), folder / "no-rating.csv")


def _no_text(folder: Path, raw: pd.DataFrame) -> None:
    write_raw(raw.head(5), folder / "good.csv")
    write_raw(raw.drop(columns=[TEXT]).head(5), folder / "sub" / "no-text.csv")


def _garbled(folder: Path, raw: pd.DataFrame) -> None:
    folder.mkdir(parents=True)
    (folder / "garbled.csv.gz").write_bytes(b"\x1f\x8bthis is not gzip at all")


def _ragged(folder: Path, raw: pd.DataFrame) -> None:
    folder.mkdir(parents=True)
    (folder / "ragged.csv").write_text(f"{TEXT},{RATING}\ngood,5\nbad,4,extra,fields\n")


def _not_utf8(folder: Path, raw: pd.DataFrame) -> None:
    folder.mkdir(parents=True)
    (folder / "latin1.csv").write_bytes(f"{TEXT},{RATING}\n".encode() + "très joli,5\n".encode("latin-1"))


def _no_valid_rows(folder: Path, raw: pd.DataFrame) -> None:
    rows = raw.head(4).copy()
    rows[RATING] = ["", "0", "six", "4.5"]
    write_raw(rows, folder / "all-bad.csv")


def _no_csv(folder: Path, raw: pd.DataFrame) -> None:
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("not a csv")


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (None, "does not exist"),
        (_no_csv, "no CSV files"),
        (_no_rating, "no-rating.csv: missing column 'Rating'"),
        (_no_text, "sub/no-text.csv: missing column 'Review Text'"),
        (_garbled, "garbled.csv.gz: cannot be read"),
        (_ragged, "ragged.csv: cannot be read as a CSV file"),
        (_not_utf8, "latin1.csv: cannot be read"),
        (_no_valid_rows, "no valid rows: read 4 rows from 1 files"),
    ],
)
def test_bad_input_fails_with_a_message(
    tmp_path: Path, sample_csv: Path, minilm_dir: Path, make_input, message: str
) -> None:
    folder = tmp_path / "in"
    if make_input is not None:
        make_input(folder, read_raw(sample_csv))
    result = run_step(folder, tmp_path / "out", minilm_dir)
    assert result.returncode == 1, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("model", "arguments", "message"),
    [
        ("/no/such/model", (), "--pretrained-model '/no/such/model': cannot load its tokenizer"),
        (None, ("--max-seq-length", "1000"), "--max-seq-length 1000 is longer than"),
    ],
)
def test_bad_model_settings_fail_before_the_scan(
    tmp_path: Path,
    sample_csv: Path,
    minilm_dir: Path,
    model: str | None,
    arguments: tuple[str, ...],
    message: str,
) -> None:
    result = run_step(sample_csv, tmp_path / "out", model or minilm_dir, *arguments)
    assert result.returncode == 1
    assert message in result.stderr
    assert "scan" not in result.stderr  # no progress bar: nothing was read


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--train-split-percentage", "0.8"), "must be 1, got 0.8 + 0.05 + 0.05"),
        (("--balance-dataset", "maybe"), "expected true/false"),
        (("--test-split-percentage", "-0.1"), "must be between 0 and 1"),
    ],
)
def test_bad_arguments_fail_like_argparse(tmp_path: Path, arguments: tuple[str, ...], message: str) -> None:
    result = run_step(tmp_path, tmp_path / "out", "unused-model", *arguments)
    assert result.returncode == 2
    assert message in result.stderr


# ------------------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize(
    ("value", "expected"),
    [("True", True), ("yes", True), ("1", True), ("FALSE", False), ("no", False), ("0", False)],
)
def test_str_to_bool(value: str, expected: bool) -> None:
    assert arguments.str_to_bool(value) is expected


def test_row_codes_check_only_text_and_rating() -> None:
    frame = pd.DataFrame(
        {
            "Title": ["", "", "", "", "", "", ""],
            TEXT: ["good", "  ", "ok", "meh", "bad", "fine", ""],
            RATING: ["5", "5", "5.0", "3", "1", "4.5", "x"],
        }
    )
    codes = preprocess.row_codes(frame).tolist()
    missing, invalid = (
        preprocess.REJECT_CODES["missing_review_text"],
        preprocess.REJECT_CODES["invalid_rating"],
    )
    assert codes == [2, missing, 2, 1, 0, invalid, missing]


def test_splits_depend_only_on_seed_and_id() -> None:
    ids = np.arange(200_000, dtype=np.uint64) * np.uint64(7919)
    splits = preprocess.assign_splits(ids, seed=42, ratios=(0.9, 0.05, 0.05))
    assert np.array_equal(preprocess.assign_splits(ids[::-1], 42, (0.9, 0.05, 0.05)), splits[::-1])
    assert np.allclose(np.bincount(splits) / ids.size, (0.9, 0.05, 0.05), atol=0.003)
    assert not np.array_equal(preprocess.assign_splits(ids, 43, (0.9, 0.05, 0.05)), splits)


def test_balance_keeps_exactly_the_smallest_class() -> None:
    ids = np.arange(1000, dtype=np.uint64)
    codes = np.array([0] * 100 + [1] * 300 + [2] * 600, dtype=np.int8)
    assert preprocess.balance(ids, codes, seed=1) == {0: 100, 1: 300, 2: 600}
    assert np.bincount(codes[codes >= 0]).tolist() == [100, 100, 100]
    assert np.count_nonzero(codes == preprocess.REJECT_CODES["balanced_out"]) == 700


# ------------------------------------------------------------------------------- Feature Store ingestion


class _FeatureStore(BaseHTTPRequestHandler):
    """A stand-in for ``PUT /FeatureGroup/{name}``; fails the review ids the test asks it to."""

    records: list[dict]
    fail_always: set[str]
    fail_once: set[str]

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        values = {value["FeatureName"]: value["ValueAsString"] for value in body["Record"]}
        review_id = values[features.RECORD_IDENTIFIER]
        if review_id in self.fail_always:
            self._reply(400, {"__type": "ValidationError", "message": f"bad record {review_id}"})
        elif review_id in self.fail_once:
            self.fail_once.discard(review_id)
            self._reply(503, {"__type": "ServiceUnavailable", "message": "try again"})
        else:
            self.records.append({"group": self.path.rsplit("/", 1)[-1], **values})
            self._reply(200, {})

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def feature_store() -> Iterator[tuple[type[_FeatureStore], dict[str, str]]]:
    handler = type("Handler", (_FeatureStore,), {"records": [], "fail_always": set(), "fail_once": set()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {
        "AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME": f"http://127.0.0.1:{server.server_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    yield handler, env
    server.shutdown()
    thread.join()


def test_records_are_put_into_the_feature_group(
    tmp_path: Path, sample_csv: Path, minilm_dir: Path, feature_store
) -> None:
    """Every record is put once (a throttled one after a retry); one the service refuses fails the step."""
    handler, env = feature_store
    write_raw(read_raw(sample_csv).head(60), tmp_path / "in" / "a.csv")
    ids = preprocess.review_id_strings(preprocess.row_ids(read_raw(tmp_path / "in" / "a.csv")))
    handler.fail_once.add(ids[0])
    handler.fail_always.add(ids[1])
    output = tmp_path / "out"
    args = ("--feature-group-name", "reviews-fg", "--balance-dataset", "false", "--ingest-workers", "3")
    result = run_step(tmp_path / "in", output, minilm_dir, *args, env=env)

    assert result.returncode == 1
    records = pq.read_table(output / "features").to_pandas()
    message = f"1 of {len(records)} records could not be put into feature group 'reviews-fg' after retries"
    assert message in result.stderr
    assert f"review_id={ids[1]}" in result.stderr
    assert summary_of(output)["ingested"] == {"feature_group": "reviews-fg", "put": len(records), "failed": 1}

    put = pd.DataFrame(handler.records)
    assert set(put["group"]) == {"reviews-fg"}
    assert sorted(put["review_id"]) == sorted(set(records["review_id"]) - {ids[1]})
    assert ids[0] in set(put["review_id"])  # retried after the 503
    row = put.set_index("review_id").loc[ids[0]]
    record = records.set_index("review_id").loc[ids[0]]
    for name in features.FEATURE_NAMES:
        if name != features.RECORD_IDENTIFIER:
            assert row[name] == str(record[name]), name
