"""The committed sample has the Kaggle layout and the edge cases the pipeline must handle; the benchmark
generator writes the same layout, deterministically."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pandas as pd
import pytest
from transformers import AutoTokenizer

from data import build_sample
from data.synthetic_reviews import write_synthetic_reviews
from model_build.steps.features import RATING_COLUMN, RAW_COLUMNS, TEXT_COLUMN

KAGGLE_HEADER = [
    "",
    "Clothing ID",
    "Age",
    "Title",
    "Review Text",
    "Rating",
    "Recommended IND",
    "Positive Feedback Count",
    "Division Name",
    "Department Name",
    "Class Name",
]
CLASSES_BY_DEPARTMENT = {
    "Tops": {"Knits", "Blouses", "Sweaters", "Fine gauge"},
    "Dresses": {"Dresses"},
    "Bottoms": {"Pants", "Jeans", "Skirts", "Shorts"},
    "Intimate": {"Intimates", "Lounge", "Swim", "Sleep", "Legwear"},
    "Jackets": {"Jackets", "Outerwear"},
    "Trend": {"Trend"},
}


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> pd.DataFrame:
    return pd.read_csv(sample_csv, index_col=0, keep_default_na=False, na_values=[""])


def header_of(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle))


def test_sample_has_the_kaggle_header_and_enough_rows(sample_csv: Path, sample: pd.DataFrame) -> None:
    assert header_of(sample_csv) == KAGGLE_HEADER == ["", *RAW_COLUMNS]
    assert len(sample) >= 600
    assert list(sample.index) == list(range(len(sample)))


def test_sample_is_what_the_build_script_writes(sample_csv: Path, tmp_path: Path) -> None:
    """The committed file and the fragments it was composed from must not drift apart."""
    build_sample.main(["--out", str(tmp_path / "sample.csv")])
    assert (tmp_path / "sample.csv").read_bytes() == sample_csv.read_bytes(), "run data/build_sample.py"


def test_sample_ratings_are_skewed_like_the_real_data(sample: pd.DataFrame) -> None:
    counts = sample[RATING_COLUMN].value_counts()
    assert set(counts.index) == {1, 2, 3, 4, 5}
    assert counts[4] + counts[5] > 0.7 * counts.sum()
    assert counts[5] > counts[4] > counts[3] > counts[2]
    assert counts[3] > counts[1]
    recommended = sample.groupby(RATING_COLUMN)["Recommended IND"].mean()
    assert recommended[5] > 0.9 and recommended[4] > 0.8
    assert recommended[1] < 0.1 and recommended[2] < 0.2


def test_sample_has_a_few_rows_with_an_empty_rating_for_the_reject_path(sample: pd.DataFrame) -> None:
    empty = sample[sample[RATING_COLUMN].isna()]
    assert 2 <= len(empty) <= 3
    assert empty[TEXT_COLUMN].notna().all()


def test_sample_has_empty_titles_and_a_few_empty_texts(sample: pd.DataFrame) -> None:
    assert 0.08 < sample["Title"].isna().mean() < 0.25
    empty_texts = sample[sample[TEXT_COLUMN].isna()]
    assert 3 <= len(empty_texts) <= 8
    assert empty_texts[["Clothing ID", "Age", RATING_COLUMN, "Class Name"]].notna().all().all()


def test_sample_categories_are_consistent(sample: pd.DataFrame) -> None:
    assert set(sample["Division Name"]) <= {"General", "General Petite", "Intimates"}
    for department, classes in sample.groupby("Department Name")["Class Name"]:
        assert set(classes) <= CLASSES_BY_DEPARTMENT[department], department


def test_sample_texts_are_distinct_varied_and_not_only_ascii(sample: pd.DataFrame) -> None:
    texts = sample[TEXT_COLUMN].dropna()
    assert not texts.duplicated().any()
    assert texts.map(lambda text: not text.isascii()).sum() >= 20
    assert texts.str.contains("\n").sum() >= 5  # multi-paragraph reviews survive CSV quoting
    assert texts.str.contains('"').sum() >= 5
    assert texts.str.contains("[éüñ¡ö]").sum() >= 3  # a few words in French, Spanish or German


def test_sample_has_reviews_longer_than_128_tokens(sample: pd.DataFrame, minilm_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    texts = sample[TEXT_COLUMN].dropna().tolist()
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    assert sum(length > 128 for length in lengths) >= 20
    words = sample[TEXT_COLUMN].dropna().str.split().str.len()
    assert words.between(120, 250).sum() >= 20


def test_generator_writes_the_rows_across_files_deterministically(tmp_path: Path) -> None:
    first = write_synthetic_reviews(tmp_path / "a", rows=2_000, files=3, seed=5)
    again = write_synthetic_reviews(tmp_path / "b", rows=2_000, files=3, seed=5)
    other = write_synthetic_reviews(tmp_path / "c", rows=2_000, files=3, seed=6)
    assert [path.name for path in first] == ["reviews-00000.csv", "reviews-00001.csv", "reviews-00002.csv"]
    assert all(header_of(path) == KAGGLE_HEADER for path in first)
    assert [path.read_bytes() for path in first] == [path.read_bytes() for path in again]
    assert first[0].read_bytes() != other[0].read_bytes()
    frames = [pd.read_csv(path, index_col=0) for path in first]
    assert [len(frame) for frame in frames] == [667, 667, 666]
    combined = pd.concat(frames)
    assert list(combined.index) == list(range(2_000))
    assert set(combined[RATING_COLUMN]) == {1, 2, 3, 4, 5}
    assert combined[TEXT_COLUMN].str.split().str.len().ge(120).sum() > 0


def test_generator_gzip_output_is_readable_by_pandas(tmp_path: Path) -> None:
    paths = write_synthetic_reviews(tmp_path, rows=500, files=2, seed=0, gzip=True)
    assert [path.name for path in paths] == ["reviews-00000.csv.gz", "reviews-00001.csv.gz"]
    frame = pd.concat(pd.read_csv(path, index_col=0) for path in paths)
    assert list(frame.columns) == list(RAW_COLUMNS)
    assert len(frame) == 500


@pytest.mark.parametrize(("rows", "files"), [(0, 1), (10, 0), (3, 4)])
def test_generator_rejects_impossible_sizes(tmp_path: Path, rows: int, files: int) -> None:
    with pytest.raises(ValueError, match=r"--rows|--files"):
        write_synthetic_reviews(tmp_path, rows=rows, files=files)
