"""The processing step, run as SageMaker runs it: ``python3 preprocess.py --args`` in a subprocess.

Runs on the sample data with the bundled MiniLM and with a tiny RoBERTa tokenizer, on shards of it, on
hand-made bad inputs, and against a local HTTP stand-in of the Feature Store runtime API.
"""

from __future__ import annotations

import gzip
import json
import os
import random
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
import reviews_csv
import split_files
from splits import assign_splits, balance, row_codes, split_sizes

SCRIPT = Path(preprocess.__file__)
TEXT, RATING = features.TEXT_COLUMN, features.RATING_COLUMN
SHARDS = ("shard-a.csv", "nested/shard-b.csv.gz")
SMALL = ("--min-test-reviews-per-class", "0")
"""For inputs of a few dozen rows, whose test split is too small for the gate's default."""


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


def test_processing_the_same_input_again_gives_the_same_split_files_byte_for_byte(
    sample_run: Path, sample_csv: Path, minilm_dir: Path, tmp_path: Path
) -> None:
    """Training's inputs (and so its cache key) must not change when the same data is processed again."""
    again = tmp_path / "again"
    run_ok(sample_csv.parent, again, minilm_dir, "--balance-dataset", "False")
    for split in features.SPLITS:
        first = sorted((sample_run / split).glob("*.parquet"))
        second = sorted((again / split).glob("*.parquet"))
        assert [path.name for path in first] == [path.name for path in second], split
        assert [path.read_bytes() for path in first] == [path.read_bytes() for path in second], split


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
    assert set(rejects["reject_reason"]) <= set(reviews_csv.REJECT_REASONS)


def test_outputs_have_the_contract_schema(sample_run: Path, minilm_dir: Path) -> None:
    from transformers import AutoTokenizer

    for split in features.SPLITS:
        table = pq.read_table(sample_run / split)
        assert table.schema.equals(split_files.SPLIT_SCHEMA), split
        assert set(table["split_type"].to_pylist()) == {split}
    records = pq.read_table(sample_run / "features")
    assert tuple(records.column_names) == features.FEATURE_NAMES
    kept = splits_of(sample_run).set_index("review_id")
    record_frame = records.to_pandas().set_index("review_id")
    assert sorted(record_frame.index) == sorted(kept.index)
    for review_id, record in record_frame.head(50).iterrows():
        assert json.loads(record["input_ids"]) == kept.loc[review_id, "input_ids"].tolist()
    # The event time is the Feature Store's alone: one per run, and no wall-clock value in what training reads.
    assert record_frame["date"].nunique() == 1 and record_frame["date"].iloc[0].endswith("Z")
    assert "date" not in kept.columns
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


def split_counts(kept: pd.DataFrame) -> dict[int, list[int]]:
    """Sentiment -> [train, validation, test] row counts."""
    return {
        int(sentiment): [int((rows["split_type"] == split).sum()) for split in features.SPLITS]
        for sentiment, rows in kept.groupby("sentiment")
    }


def test_splits_are_disjoint_and_stratified_exactly(sample_run: Path) -> None:
    kept = splits_of(sample_run)
    assert kept["review_id"].is_unique  # disjoint: no review in two splits
    counts = split_counts(kept)
    assert set(counts) == {-1, 0, 1}
    for sentiment, sizes in counts.items():
        assert sizes == split_sizes(sum(sizes), (0.90, 0.05, 0.05)), sentiment
        assert min(sizes) > 0, sentiment
    assert summary_of(sample_run)["split_sentiments"]["test"] == {
        features.SENTIMENT_NAMES[sentiment]: sizes[2] for sentiment, sizes in counts.items()
    }


def test_shards_give_the_same_union_as_one_run_and_ids_are_stable(
    tmp_path: Path, sample_csv: Path, sample_run: Path, tiny_roberta_dir: Path
) -> None:
    """Two instances each with half the files (one gzipped) write the same rows as one run; ids survive renames
    and re-writes. Each instance stratifies its own share exactly, so a row's split may differ from the one
    run's (what the module docstring says sharding changes); the one run matches a re-run with other file
    names, chunk size and tokenizer exactly.

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
    same = ["label_id", "input_ids"]
    pd.testing.assert_frame_equal(by_id(shards)[same], by_id(both)[same])
    for index in range(2):
        for sentiment, sizes in split_counts(splits_of(tmp_path / f"out-{index}")).items():
            assert sizes == split_sizes(sum(sizes), (0.90, 0.05, 0.05)), (index, sentiment)
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
    run_ok(tmp_path / "in", tmp_path / "out", minilm_dir, *SMALL, "--balance-dataset", "false")
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


def _not_utf8(folder: Path, raw: pd.DataFrame) -> None:
    folder.mkdir(parents=True)
    (folder / "latin1.csv").write_bytes(f"{TEXT},{RATING}\n".encode() + "très joli,5\n".encode("latin-1"))


def _header_not_utf8(folder: Path, raw: pd.DataFrame) -> None:
    folder.mkdir(parents=True)
    (folder / "header.csv").write_bytes(f"{TEXT},{RATING},Th\xe8me\nnice,5,a\n".encode("latin-1"))


def _png_named_csv(folder: Path, raw: pd.DataFrame) -> None:
    write_raw(raw.head(5), folder / "good.csv")
    (folder / "picture.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))


def _random_bytes(folder: Path, raw: pd.DataFrame) -> None:
    folder.mkdir(parents=True)
    # A fixed seed: these 4 KB start with 0xf5, a byte UTF-8 never uses.
    (folder / "noise.csv").write_bytes(random.Random(1).randbytes(4096))


def _nul_bytes(folder: Path, raw: pd.DataFrame) -> None:
    folder.mkdir(parents=True)
    (folder / "zeros.csv").write_bytes(f"{TEXT},{RATING}".encode() + bytes(4096))


def _no_line_end(folder: Path, raw: pd.DataFrame) -> None:
    folder.mkdir(parents=True)
    (folder / "one-line.csv").write_bytes(b"a" * (reviews_csv.HEADER_LIMIT + 10))


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
        (_not_utf8, "no valid rows: read 1 rows from 1 files under"),
        (
            _header_not_utf8,
            "header.csv: the header is not valid UTF-8 (byte 0xe8 at offset 21, after 'Review Text,Rating,Th')",
        ),
        (_png_named_csv, "picture.csv: the header is not valid UTF-8 (byte 0x89 at offset 0)"),
        (_random_bytes, "noise.csv: the header is not valid UTF-8 (byte 0xf5 at offset 0)"),
        (_nul_bytes, "zeros.csv: the header holds a NUL byte (offset 18): a binary file, not CSV text"),
        (_no_line_end, "one-line.csv: no header row ends within the first 1024 KiB"),
        (_no_valid_rows, "no valid rows: read 4 rows from 1 files"),
    ],
)
def test_bad_input_fails_with_a_message(
    tmp_path: Path, sample_csv: Path, minilm_dir: Path, make_input, message: str
) -> None:
    folder = tmp_path / "in"
    if make_input is not None:
        make_input(folder, read_raw(sample_csv))
    result = run_step(folder, tmp_path / "out", minilm_dir, *SMALL)
    assert result.returncode == 1, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written as if it had worked


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


def test_a_model_name_offline_fails_at_once_and_says_how_to_download(
    tmp_path: Path, sample_csv: Path
) -> None:
    result = run_step(sample_csv, tmp_path / "out", "nonexistent-model", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1
    assert "--pretrained-model 'nonexistent-model': cannot load its tokenizer (HF_HUB_OFFLINE is set" in (
        result.stderr
    )
    assert "set HF_HUB_OFFLINE=0 to download it" in result.stderr


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
    codes = row_codes(frame).tolist()
    missing, invalid = (
        reviews_csv.REJECT_CODES["missing_review_text"],
        reviews_csv.REJECT_CODES["invalid_rating"],
    )
    assert codes == [2, missing, 2, 1, 0, invalid, missing]


def test_splits_are_exact_per_class_and_depend_only_on_seed_and_ids() -> None:
    ratios = (0.9, 0.05, 0.05)
    rng = np.random.default_rng(0)
    ids = np.arange(1_500, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # odd factor: distinct ids
    # Classes of 3, 97 and 1,380 rows; 20 rejected rows (code < 0) are in no split that counts.
    codes = np.array([0] * 3 + [1] * 97 + [2] * 1_380 + [-1] * 20, dtype=np.int8)
    splits = assign_splits(ids, codes, seed=42, ratios=ratios)
    for label, count in ((0, 3), (1, 97), (2, 1_380)):
        sizes = np.bincount(splits[codes == label], minlength=3).tolist()
        assert sizes == split_sizes(count, ratios)
        assert min(sizes) >= 1  # even the class of 3: one review in each split
    # Any row order gives every row the same split; another seed gives another split with the same sizes.
    order = rng.permutation(ids.size)
    assert np.array_equal(assign_splits(ids[order], codes[order], 42, ratios), splits[order])
    other = assign_splits(ids, codes, 43, ratios)
    assert not np.array_equal(other[codes >= 0], splits[codes >= 0])
    assert np.array_equal(np.bincount(other[codes >= 0]), np.bincount(splits[codes >= 0]))


@pytest.mark.parametrize(
    ("count", "ratios", "expected"),
    [
        (0, (0.9, 0.05, 0.05), [0, 0, 0]),
        (2, (0.9, 0.05, 0.05), [1, 1, 0]),  # fewer rows than splits: as many splits as rows
        (3, (0.9, 0.05, 0.05), [1, 1, 1]),
        (20, (0.9, 0.05, 0.05), [18, 1, 1]),
        (258, (0.9, 0.05, 0.05), [232, 13, 13]),  # the balanced sample's class size
        (10, (0.8, 0.2, 0.0), [8, 2, 0]),  # a split without a share gets nothing
        (100, (1 / 3, 1 / 3, 1 / 3), [34, 33, 33]),
        (1_000_000, (0.9, 0.05, 0.0500005), [900_000, 50_000, 50_000]),  # ratios summing to 1 within 1e-6
    ],
)
def test_split_sizes(count: int, ratios: tuple[float, ...], expected: list[int]) -> None:
    assert split_sizes(count, ratios) == expected


def test_balance_keeps_exactly_the_smallest_class() -> None:
    ids = np.arange(1000, dtype=np.uint64)
    codes = np.array([0] * 100 + [1] * 300 + [2] * 600, dtype=np.int8)
    balancing = balance(ids, codes, seed=1)
    assert balancing.before == {0: 100, 1: 300, 2: 600}
    assert balancing.dropped == {0: 0, 1: 200, 2: 500}
    assert np.bincount(codes[codes >= 0]).tolist() == [100, 100, 100]
    assert np.count_nonzero(codes == reviews_csv.REJECT_CODES["balanced_out"]) == 700


def test_balance_never_drops_a_human_label() -> None:
    """Human labels are kept first; a class with more of them than the target keeps them all, and says so."""
    ids = np.arange(1000, dtype=np.uint64)
    codes = np.array([0] * 100 + [1] * 300 + [2] * 600, dtype=np.int8)
    human = np.zeros(1000, dtype=bool)
    human[[100, 101, 102]] = True  # 3 neutral human labels: the class still ends at the target
    human[400:520] = True  # 120 positive human labels: more than the smallest class's 100
    before = codes.copy()
    balancing = balance(ids, codes, seed=1, human=human)
    assert (codes[human] == before[human]).all(), "a human label was balanced out"
    assert np.bincount(codes[codes >= 0]).tolist() == [100, 100, 120]
    assert balancing.human == {0: 0, 1: 3, 2: 120}
    assert balancing.dropped == {0: 0, 1: 200, 2: 480}
    assert np.count_nonzero(codes == reviews_csv.REJECT_CODES["balanced_out"]) == 680
    line = balancing.describe()
    assert "neutral 300 -> 100 (dropped 200, all 3 human labels kept)" in line
    assert "positive 600 -> 120 (dropped 480, all 120 human labels kept)" in line
    assert "positive: more human labels than 100, all kept" in line
    # Without the human labels the same call keeps other rows of the class: the flags decide, not luck.
    plain = before.copy()
    balance(ids, plain, seed=1)
    assert (plain[human] == reviews_csv.REJECT_CODES["balanced_out"]).any()


def test_human_labels_survive_balancing_end_to_end(
    tmp_path: Path, sample_csv: Path, minilm_dir: Path
) -> None:
    """An exported file of human labels (``Label Source``) next to the sample: every one of them is trained or
    tested on, the summary counts them per split, and the log says what balancing dropped."""
    raw = read_raw(sample_csv).head(300)
    write_raw(raw, tmp_path / "in" / "reviews.csv")
    positive = raw[raw[RATING].isin(["4", "5"])].head(60).copy()  # positive is the largest class
    positive[TEXT] = positive[TEXT] + " (read again by a person)"  # new rows, not duplicates
    positive[features.LABEL_SOURCE_COLUMN] = [
        f"human-review:item-{i}:1 of 1 reviewers agreed" for i in range(60)
    ]
    write_raw(positive, tmp_path / "in" / "human-labels.csv")
    result = run_ok(tmp_path / "in", tmp_path / "out", minilm_dir, *SMALL)
    summary = summary_of(tmp_path / "out")
    assert summary["balancing"]["human_labels"]["positive"] == 60
    assert summary["human_labels"]["kept"] == 60
    assert sum(summary["human_labels"]["splits"].values()) == 60
    assert summary["rejected"]["balanced_out"] == sum(summary["balancing"]["dropped"].values())
    assert "all 60 human labels kept" in result.stdout
    rejects = pd.concat(
        [
            read_raw(path)
            for path in (tmp_path / "out" / "rejects").glob("*.csv")
            if "summary" not in path.name
        ]
    )
    if features.LABEL_SOURCE_COLUMN in rejects:
        balanced_out = rejects[rejects["reject_reason"] == "balanced_out"]
        assert (balanced_out[features.LABEL_SOURCE_COLUMN].fillna("") == "").all()
    kept = set(splits_of(tmp_path / "out")["review_body"])
    assert set(positive[TEXT]) <= kept


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
    ids = reviews_csv.review_id_strings(reviews_csv.row_ids(read_raw(tmp_path / "in" / "a.csv")))
    handler.fail_once.add(ids[0])
    handler.fail_always.add(ids[1])
    output = tmp_path / "out"
    args = (
        "--feature-group-name",
        "reviews-fg",
        "--balance-dataset",
        "false",
        "--ingest-workers",
        "3",
        *SMALL,
    )
    result = run_step(tmp_path / "in", output, minilm_dir, *args, env=env)

    assert result.returncode == 1
    records = pq.read_table(output / "features").to_pandas()
    message = (
        f"1 of {len(records)} records could not be put into feature group 'reviews-fg' after 10 tries each"
    )
    assert message in result.stderr
    assert f"review_id={ids[1]}" in result.stderr
    assert summary_of(output)["ingested"] == {"feature_group": "reviews-fg", "put": len(records), "failed": 1}
    # The record that failed is kept, with why: it can be put again from features/ by its id.
    (failures_file,) = (output / preprocess.REJECTS).glob(f"{preprocess.INGEST_FAILURES_PREFIX}*.csv")
    assert failures_file.name in result.stderr
    failures = pd.read_csv(failures_file, dtype=str)
    assert failures[features.RECORD_IDENTIFIER].tolist() == [ids[1]]
    assert f"bad record {ids[1]}" in failures["error"].iloc[0]

    put = pd.DataFrame(handler.records)
    assert set(put["group"]) == {"reviews-fg"}
    assert sorted(put["review_id"]) == sorted(set(records["review_id"]) - {ids[1]})
    assert ids[0] in set(put["review_id"])  # retried after the 503
    row = put.set_index("review_id").loc[ids[0]]
    record = records.set_index("review_id").loc[ids[0]]
    for name in features.FEATURE_NAMES:
        if name != features.RECORD_IDENTIFIER:
            assert row[name] == str(record[name]), name


# ------------------------------------------------------------------------- encoding and small test splits


def _raw_lines(frame: pd.DataFrame) -> list[bytes]:
    """The header and then each row of ``frame`` as one CSV record (quoted newlines and all), as UTF-8 bytes,
    so that single bytes of a row can be broken."""
    header = frame.head(0).to_csv(index=False, lineterminator="\n").encode()
    return [header] + [
        frame.iloc[[index]].to_csv(index=False, header=False, lineterminator="\n").encode()
        for index in range(len(frame))
    ]


@pytest.mark.parametrize("name", ["mixed.csv", "nested/mixed.csv.gz"])
def test_rows_that_are_not_utf8_are_rejected_one_by_one(
    tmp_path: Path, sample_csv: Path, minilm_dir: Path, name: str
) -> None:
    raw = read_raw(sample_csv).rename(columns={"Unnamed: 0": ""}).head(80)
    lines = _raw_lines(raw)
    # Data rows 3, 40 and 79 (from 1) get bytes that are not UTF-8: latin-1, a lone continuation byte, a
    # truncated sequence; row 79's is in a column other than the text.
    broken = {3: "très joli".encode("latin-1"), 40: b"\x80 bad", 79: b"\xe2\x82"}
    for row, bad in broken.items():
        fields = lines[row].split(b",", 2)
        column = 1 if row == 79 else 2  # the Clothing ID field, or the start of the rest (Title...)
        fields[column] = bad + fields[column]
        lines[row] = b",".join(fields)
    path = tmp_path / "in" / name
    path.parent.mkdir(parents=True)
    content = b"".join(lines)
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)

    output = tmp_path / "out"
    run_ok(tmp_path / "in", output, minilm_dir, *SMALL, "--balance-dataset", "false")
    summary = summary_of(output)
    assert summary["read"] == 80
    assert summary["rejected"]["invalid_encoding"] == 3
    assert summary["read"] == summary["kept"] + sum(summary["rejected"].values())

    (rejects_file,) = (output / "rejects").glob("mixed-*.csv")
    rejects = pd.read_csv(
        rejects_file, dtype=object, keep_default_na=False, encoding_errors="surrogateescape"
    )
    invalid = rejects[rejects["reject_reason"] == "invalid_encoding"]
    assert invalid["source_row"].astype(int).tolist() == sorted(broken)
    assert set(invalid["source_file"]) == {name}
    # Kept unchanged: the rejected rows' bytes in the rejects file are the input's bytes.
    written = rejects_file.read_bytes()
    for row in broken:
        assert lines[row].rstrip(b"\n") in written, row
    # The other rows of the file went through as usual.
    kept_ids = set(splits_of(output)["review_id"])
    assert len(kept_ids) == summary["kept"]
    clean = raw.drop(index=raw.index[[row - 1 for row in broken]])
    valid = clean[(clean[TEXT].str.strip() != "") & clean[RATING].isin(["1", "2", "3", "4", "5"])]
    assert kept_ids == set(reviews_csv.review_id_strings(reviews_csv.row_ids(valid)))


def test_row_ids_of_escaped_bytes_are_ids_of_the_raw_bytes() -> None:
    escaped = b"caf\xe9".decode("utf-8", "surrogateescape")
    frame = pd.DataFrame({TEXT: [escaped, "café"], RATING: ["5", "5"]}, dtype=object)
    assert reviews_csv.escaped_rows(frame).tolist() == [True, False]
    codes = row_codes(frame, reviews_csv.escaped_rows(frame))
    assert codes.tolist() == [reviews_csv.REJECT_CODES["invalid_encoding"], 2]
    ids = reviews_csv.row_ids(frame)
    assert ids[0] != ids[1]  # latin-1 é and UTF-8 é are other bytes: other rows


def test_a_test_split_too_small_for_the_gate_is_refused(
    tmp_path: Path, sample_csv: Path, minilm_dir: Path
) -> None:
    write_raw(read_raw(sample_csv).head(300), tmp_path / "in" / "a.csv")
    common = ("--balance-dataset", "false")
    run_ok(tmp_path / "in", tmp_path / "ok", minilm_dir, *common, "--min-test-reviews-per-class", "1")
    test_counts = summary_of(tmp_path / "ok")["split_sentiments"]["test"]
    smallest = min(test_counts, key=test_counts.get)
    threshold = test_counts[smallest] + 1

    result = run_step(
        tmp_path / "in",
        tmp_path / "refused",
        minilm_dir,
        *common,
        "--min-test-reviews-per-class",
        str(threshold),
    )
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert f"'{smallest}' has {test_counts[smallest]} test reviews" in result.stderr
    assert f"fewer than --min-test-reviews-per-class {threshold}" in result.stderr
    # Refused before anything is written: no split, no record, no summary.
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").rglob("*.*"))


def test_the_sample_with_default_balancing_clears_the_default_threshold(
    tmp_path: Path, sample_csv: Path, minilm_dir: Path
) -> None:
    """The pipeline's defaults on the bundled sample: every class has at least the default test reviews."""
    from model_build.pipeline_spec import PIPELINE

    default = PIPELINE.parameter("MinTestReviewsPerClass").default
    assert preprocess.parse_args([]).min_test_reviews_per_class == default
    run_ok(sample_csv, tmp_path / "out", minilm_dir)
    summary = summary_of(tmp_path / "out")
    assert min(summary["split_sentiments"]["test"].values()) >= default
    assert summary["min_test_reviews_per_class"] == default


def test_rows_with_too_many_or_too_few_fields_are_rejected_with_their_physical_line(
    tmp_path: Path, sample_csv: Path, minilm_dir: Path
) -> None:
    """A 13-field and a 6-field row in an 11-column export: both in the rejects with the line an editor
    shows (the sample's quoted newlines make it differ from the record number), the run goes on."""
    text = sample_csv.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines_before = text.count("\n")
    records_before = len(read_raw(sample_csv))
    assert lines_before > records_before + 1  # some review spans lines
    too_many = "99999,1,30,Extra,Two extra fields here,5,1,0,General,Tops,Knits,surplus,more"
    too_few = "99998,2,31,Short,A short row,4"
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "reviews.csv").write_text(text + too_many + "\n" + too_few + "\n", encoding="utf-8")

    result = run_ok(folder, tmp_path / "out", minilm_dir, "--balance-dataset", "false")
    summary = summary_of(tmp_path / "out")
    assert summary["rejected"]["too_many_fields"] == 1
    assert summary["rejected"]["too_few_fields"] == 1
    assert summary["read"] == records_before + 2 == summary["kept"] + sum(summary["rejected"].values())
    assert f"line {lines_before + 1}: the row has 13 fields, the header 11" in result.stderr + result.stdout

    rejects = pd.concat([read_raw(path) for path in (tmp_path / "out" / "rejects").glob("*.csv")])
    bad = rejects[rejects["reject_reason"].isin(["too_many_fields", "too_few_fields"])].set_index(
        "reject_reason"
    )
    assert bad.loc["too_many_fields", "source_line"] == str(lines_before + 1)
    assert bad.loc["too_few_fields", "source_line"] == str(lines_before + 2)
    assert bad.loc["too_many_fields", "source_row"] == str(records_before + 1)
    # Nothing lost: the extra fields are joined into the last column, the short row padded.
    assert bad.loc["too_many_fields", "Class Name"] == "Knits,surplus,more"
    assert bad.loc["too_few_fields", "Rating"] == "4" and bad.loc["too_few_fields", "Class Name"] == ""
