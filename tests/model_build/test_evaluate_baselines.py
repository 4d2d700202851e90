"""The evaluation step's baselines: what they predict, that they are in ``evaluation.json`` where the gate reads
them, and that the picture shows them.

The baselines are what the gate compares the model with, so a baseline that scores too well would block every
model and one that scores too badly would let a majority-class model through: the scores are checked against
hand-computed values, not just for being there.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import Any

import baselines
import evaluate
import evaluation_pictures
import features
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model_build.pipeline_spec import ACCURACY_JSON_PATH
from tests.model_build.review_splits import labelled_model, write_splits

# Words that give the sentiment away, and filler every review shares.
CLASS_WORDS = {
    -1: ("awful", "broken", "refund", "itchy"),
    0: ("okay", "average", "fine", "mixed"),
    1: ("great", "love", "perfect", "gorgeous"),
}
FILLER = ("the", "dress", "fabric", "size", "color", "order", "fit", "wash")


def reviews(counts: dict[int, int], seed: int) -> list[tuple[str, int]]:
    """(text, sentiment) pairs: two words of the review's class among four filler words, shuffled."""
    rng = random.Random(seed)
    out = []
    for sentiment, count in counts.items():
        for _ in range(count):
            words = [*rng.sample(CLASS_WORDS[sentiment], 2), *rng.choices(FILLER, k=4)]
            rng.shuffle(words)
            out.append((" ".join(words), sentiment))
    rng.shuffle(out)
    return out


def text_split(pairs: list[tuple[str, int]]) -> baselines.TextSplit:
    return baselines.TextSplit(
        [f"r{i}" for i in range(len(pairs))], [text for text, _ in pairs], [s for _, s in pairs]
    )


def write_parquet(folder: Path, pairs: list[tuple[str, int]], with_text: bool) -> Path:
    """A split as the processing step writes it; the token ids are word indices (0 and 2 as <s> and </s>)."""
    vocabulary = {
        word: index for index, word in enumerate(sorted({*FILLER, *sum(CLASS_WORDS.values(), ())}), 5)
    }
    columns: dict[str, Any] = {
        "review_id": [f"{folder.name}-{i}" for i in range(len(pairs))],
        "sentiment": pa.array([s for _, s in pairs], pa.int64()),
        "label_id": pa.array([features.LABEL_ID_BY_SENTIMENT[s] for _, s in pairs], pa.int64()),
        "input_ids": pa.array(
            [[0, *(vocabulary[word] for word in text.split()), 2] for text, _ in pairs], pa.list_(pa.int32())
        ),
    }
    if with_text:
        columns["review_body"] = [text for text, _ in pairs]
    folder.mkdir(parents=True)
    pq.write_table(pa.table(columns), folder / "part-0.parquet")
    return folder


def at(report: dict[str, Any], path: str) -> Any:
    """The value at a dot-separated path, as SageMaker's ``JsonGet`` reads it; KeyError when absent."""
    value: Any = report
    for key in path.split("."):
        value = value[key]
    return value


def test_majority_baseline_by_hand() -> None:
    # Train: 3 positive, 1 neutral, 1 negative -> always positive. Test: 2 positive, 1 neutral, 1 negative.
    train = baselines.TextSplit(list("abcde"), ["x"] * 5, [1, 0, 1, -1, 1])
    test = baselines.TextSplit(list("fghi"), ["x"] * 4, [1, 0, -1, 1])
    entry = baselines.majority_baseline(train, test)
    assert entry["baseline"]["predicted_sentiment"] == 1
    assert entry["baseline"]["train_counts"] == {"negative": 1, "neutral": 1, "positive": 3}
    assert entry["accuracy"]["value"] == pytest.approx(2 / 4)
    positive = entry["per_class"]["positive"]
    assert (positive["precision"], positive["recall"], positive["f1"]) == (0.5, 1.0, pytest.approx(2 / 3))
    assert entry["per_class"]["negative"]["recall"] == 0.0
    assert entry["f1_macro"]["value"] == pytest.approx((0 + 0 + 2 / 3) / 3)
    assert entry["precision_macro"]["value"] == pytest.approx(0.5 / 3)
    assert entry["confusion_matrix"] == [[0, 0, 1], [0, 0, 1], [0, 0, 2]]


def test_majority_tie_goes_to_the_lowest_sentiment_whatever_the_order() -> None:
    assert baselines.majority_class([1, 0, 1, 0, -1])[0] == 0
    assert baselines.majority_class([0, 1, -1, 0, 1])[0] == 0
    assert baselines.majority_class([1, -1, 0])[0] == -1


@pytest.mark.parametrize("column", [baselines.TEXT_COLUMN, baselines.IDS_COLUMN])
def test_tfidf_beats_the_majority_baseline_when_words_give_the_label_away(
    tmp_path: Path, column: str
) -> None:
    # Imbalanced train split (positive 60%), balanced test: the majority baseline gets macro-F1 1/6.
    train = write_parquet(
        tmp_path / "train", reviews({-1: 20, 0: 10, 1: 45}, seed=1), column == "review_body"
    )
    test = write_parquet(tmp_path / "test", reviews({-1: 10, 0: 10, 1: 10}, seed=2), column == "review_body")
    test_ids = pq.read_table(test).column("review_id").to_pylist()

    scored = baselines.score_baselines(train, test, test_ids, seed=7)
    majority, tfidf = scored[baselines.MAJORITY_CLASS], scored[baselines.TFIDF_LOGISTIC_REGRESSION]
    assert majority["f1_macro"]["value"] == pytest.approx(1 / 6)
    assert tfidf["baseline"]["features"] == column
    assert tfidf["baseline"]["train_examples"] == 75
    assert tfidf["f1_macro"]["value"] > 0.9
    assert tfidf["per_class"]["neutral"]["recall"] > 0.8  # the minority class is found, not drowned out
    # The same seed gives the same baseline.
    assert baselines.score_baselines(train, test, test_ids, seed=7) == scored


def test_ids_are_the_fallback_when_a_split_lacks_the_text(tmp_path: Path) -> None:
    train = write_parquet(tmp_path / "train", reviews({-1: 5, 0: 5, 1: 5}, seed=1), with_text=True)
    test = write_parquet(tmp_path / "test", reviews({-1: 2, 0: 2, 1: 2}, seed=2), with_text=False)
    assert baselines.document_column({"train": train, "test": test}) == baselines.IDS_COLUMN
    documents = baselines.read_documents(test, "test", baselines.IDS_COLUMN).documents
    assert all(document.startswith("0 ") and document.endswith(" 2") for document in documents)


def test_a_one_class_train_split_skips_the_text_baseline_with_the_reason() -> None:
    train = text_split([("great love", 1)] * 4)
    test = text_split([("great", 1), ("awful", -1)])
    entry = baselines.tfidf_baseline(train, test, baselines.TEXT_COLUMN, seed=0)
    assert "one sentiment only (positive)" in entry["skipped"]
    assert entry["f1_macro"]["value"] is None
    comparison = evaluate.compare(
        {"f1_macro": {"value": 0.6}},
        {
            baselines.MAJORITY_CLASS: baselines.majority_baseline(train, test),
            baselines.TFIDF_LOGISTIC_REGRESSION: entry,
        },
    )
    assert comparison["best_baseline"]["name"] == baselines.MAJORITY_CLASS
    # Always positive on (positive, negative): F1 2/3, 0 and 0 (neutral: no review, no prediction).
    assert comparison["f1_macro_margin_over_best_baseline"]["value"] == pytest.approx(0.6 - (2 / 3) / 3)
    assert comparison["f1_macro_margin_over_baselines"][baselines.TFIDF_LOGISTIC_REGRESSION]["value"] is None


def test_best_baseline_is_the_highest_macro_f1_and_a_tie_goes_to_the_first() -> None:
    def scored(f1: float) -> dict[str, Any]:
        return {"accuracy": {"value": 0.5}, "f1_macro": {"value": f1}}

    metrics = {"f1_macro": {"value": 0.7}}
    both = {baselines.MAJORITY_CLASS: scored(0.2), baselines.TFIDF_LOGISTIC_REGRESSION: scored(0.75)}
    comparison = evaluate.compare(metrics, both)
    assert comparison["best_baseline"]["name"] == baselines.TFIDF_LOGISTIC_REGRESSION
    assert at(comparison, evaluate.MARGIN_JSON_PATH) == pytest.approx(-0.05)
    assert at(comparison, "f1_macro_margin_over_baselines.majority_class.value") == pytest.approx(0.5)
    tie = {baselines.MAJORITY_CLASS: scored(0.4), baselines.TFIDF_LOGISTIC_REGRESSION: scored(0.4)}
    assert evaluate.compare(metrics, tie)["best_baseline"]["name"] == baselines.MAJORITY_CLASS


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path) -> Path:
    return labelled_model(tiny_roberta_dir, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def splits(
    tmp_path_factory: pytest.TempPathFactory, sample_csv: Path, tiny_roberta_dir: Path
) -> dict[str, Path]:
    return write_splits(tmp_path_factory.mktemp("splits"), sample_csv, tiny_roberta_dir)


def run(model_dir: Path, splits: dict[str, Path], output: Path, *extra: str) -> dict[str, Any]:
    arguments = [
        "--model-path",
        str(model_dir),
        "--test-data",
        str(splits["test"]),
        "--output-data",
        str(output),
    ]
    assert evaluate.main([*arguments, *extra]) == 0
    return json.loads((output / evaluate.EVALUATION_FILE).read_text())


def test_evaluation_json_holds_the_baselines_where_the_gate_reads_them(
    tmp_path: Path, model_dir: Path, splits: dict[str, Path]
) -> None:
    report = run(model_dir, splits, tmp_path / "with", "--train-data", str(splits["train"]), "--seed", "3")
    for path in (
        ACCURACY_JSON_PATH,
        evaluate.F1_MACRO_JSON_PATH,
        evaluate.BEST_BASELINE_F1_MACRO_JSON_PATH,
        evaluate.MARGIN_JSON_PATH,
        *(
            f"baselines.{name}.{metric}.value"
            for name in baselines.BASELINES
            for metric in ("accuracy", "f1_macro")
        ),
        *(f"f1_macro_margin_over_baselines.{name}.value" for name in baselines.BASELINES),
    ):
        assert isinstance(at(report, path), float), path

    # The majority baseline is the train split's most frequent sentiment, scored on the test split.
    train_sentiments = pq.read_table(splits["train"]).column("sentiment").to_pylist()
    test_sentiments = pq.read_table(splits["test"]).column("sentiment").to_pylist()
    majority = report["baselines"]["majority_class"]
    expected = max(sorted(set(train_sentiments)), key=train_sentiments.count)  # a tie: the lowest sentiment
    assert majority["baseline"]["predicted_sentiment"] == expected
    assert majority["accuracy"]["value"] == pytest.approx(
        test_sentiments.count(expected) / len(test_sentiments)
    )
    assert majority["per_class"][features.SENTIMENT_NAMES[expected]]["recall"] == 1.0
    tfidf = report["baselines"]["tfidf_logistic_regression"]
    assert tfidf["baseline"]["features"] == "review_body"
    assert tfidf["baseline"]["seed"] == 3
    assert set(tfidf["per_class"]) == {"negative", "neutral", "positive"}
    assert sum(map(sum, tfidf["confusion_matrix"])) == len(test_sentiments)

    best = max(baselines.BASELINES, key=lambda name: report["baselines"][name]["f1_macro"]["value"])
    assert report["best_baseline"]["name"] == best
    assert at(report, evaluate.MARGIN_JSON_PATH) == pytest.approx(
        report["metrics"]["f1_macro"]["value"] - report["baselines"][best]["f1_macro"]["value"]
    )
    assert (tmp_path / "with" / evaluate.CONFUSION_MATRIX_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The model's own metrics do not depend on whether the baselines ran.
    assert run(model_dir, splits, tmp_path / "without")["metrics"] == report["metrics"]


def test_without_train_data_every_baseline_says_it_was_skipped(
    tmp_path: Path, model_dir: Path, splits: dict[str, Path]
) -> None:
    report = run(model_dir, splits, tmp_path / "out")
    for name in baselines.BASELINES:
        assert "--train-data" in report["baselines"][name]["skipped"]
        assert report["baselines"][name]["f1_macro"]["value"] is None
        assert report["f1_macro_margin_over_baselines"][name]["value"] is None
    assert "--train-data" in report["best_baseline"]["skipped"]
    assert report["best_baseline"]["name"] is None
    assert at(report, evaluate.MARGIN_JSON_PATH) is None
    assert "--train-data" in report["f1_macro_margin_over_best_baseline"]["skipped"]
    assert (tmp_path / "out" / evaluate.CONFUSION_MATRIX_FILE).is_file()


def test_a_missing_train_folder_fails_before_scoring(
    tmp_path: Path, splits: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    arguments = ["--test-data", str(splits["test"]), "--output-data", str(tmp_path / "o")]
    # No model either: the train folder is checked before the model is loaded, so the error names it.
    code = evaluate.main(
        ["--model-path", str(tmp_path / "no-model"), "--train-data", str(tmp_path / "no"), *arguments]
    )
    assert code == 2
    assert f"the train data folder {tmp_path / 'no'} does not exist" in caplog.text
    assert not (tmp_path / "o").exists()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk."""
    return struct.unpack(">II", path.read_bytes()[16:24])


@pytest.mark.parametrize("with_baselines", [True, False])
def test_the_picture_has_the_matrix_and_the_comparison_panel(tmp_path: Path, with_baselines: bool) -> None:
    train = text_split(reviews({-1: 6, 0: 6, 1: 6}, seed=1))
    test = text_split(reviews({-1: 3, 0: 3, 1: 3}, seed=2))
    y_pred = [1] * len(test.sentiments)
    report: dict[str, Any] = {"metrics": baselines.compute_metrics(test.sentiments, y_pred)}
    if with_baselines:
        report["baselines"] = {
            baselines.MAJORITY_CLASS: baselines.majority_baseline(train, test),
            baselines.TFIDF_LOGISTIC_REGRESSION: baselines.tfidf_baseline(
                train, test, baselines.TEXT_COLUMN, 0
            ),
        }
    else:
        report["baselines"] = {
            name: baselines.skipped("no --train-data given") for name in baselines.BASELINES
        }
    report.update(evaluate.compare(report["metrics"], report["baselines"]))
    path = tmp_path / evaluate.CONFUSION_MATRIX_FILE
    evaluation_pictures.plot_confusion_matrix(test.sentiments, y_pred, report, path)
    width, height = png_size(path)
    assert width > 2 * height  # the matrix and the bar panel side by side, not the matrix alone
