"""The model's metrics and the evaluation's baselines: the majority class and TF-IDF + logistic regression,
fitted on the train split and scored, with the same metrics, on the test split the model is scored on, from the
review text the split files carry.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import features
from training_data import TrainingInputError

logger = logging.getLogger("evaluate")


SENTIMENTS: tuple[int, ...] = tuple(sorted(features.SENTIMENT_NAMES))


MAJORITY_CLASS = "majority_class"


TFIDF_LOGISTIC_REGRESSION = "tfidf_logistic_regression"


BASELINES: tuple[str, ...] = (MAJORITY_CLASS, TFIDF_LOGISTIC_REGRESSION)


BASELINES_JSON_KEY = "baselines"
BEST_BASELINE_JSON_KEY = "best_baseline"
MARGIN_JSON_KEY = "f1_macro_margin_over_best_baseline"
"""Where evaluation.json keeps the baselines, the best of them, and the model's macro-F1 margin over it."""
TEXT_COLUMN = "review_body"


IDS_COLUMN = "input_ids"


class EvaluationInputError(TrainingInputError):
    """Bad input found before scoring: the message names what is wrong and where."""


def compute_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, Any]:
    """The ``metrics`` object of ``evaluation.json``, from true and predicted sentiments (-1, 0, 1)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(SENTIMENTS)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    macro = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    return {
        "accuracy": {"value": float(accuracy_score(y_true, y_pred))},
        "f1_macro": {"value": float(macro[2])},
        "precision_macro": {"value": float(macro[0])},
        "recall_macro": {"value": float(macro[1])},
        "per_class": {
            features.SENTIMENT_NAMES[label]: {
                "sentiment": label,
                "precision": float(precision[index]),
                "recall": float(recall[index]),
                "f1": float(f1[index]),
                "support": int(support[index]),
            }
            for index, label in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "confusion_matrix_labels": labels,
        "examples": len(y_true),
    }


@dataclass
class TextSplit:
    """What the text baseline reads from a split: one document per review, its sentiment, and its id."""

    review_ids: list[str]
    documents: list[str]
    sentiments: list[int]


def split_files(folder: Path, name: str) -> list[Path]:
    """The split's Parquet files, in the order :func:`training_data.read_split` reads them (rows stay aligned)."""
    if not folder.is_dir():
        raise EvaluationInputError(f"the {name} data folder {folder} does not exist")
    files = sorted(folder.rglob("*.parquet"))
    if not files:
        raise EvaluationInputError(f"the {name} data folder {folder} has no *.parquet files")
    return files


def document_column(folders: dict[str, Path]) -> str:
    """``review_body`` when every file of every split has it, else ``input_ids``.

    Both splits must use the same one: a vectorizer fitted on words cannot read token ids. The processing
    step writes the text; the ids are the fallback for splits written without it.
    """
    import pyarrow.parquet as pq

    for name, folder in folders.items():
        for file in split_files(folder, name):
            if TEXT_COLUMN not in pq.read_schema(file).names:
                return IDS_COLUMN
    return TEXT_COLUMN


def read_documents(folder: Path, name: str, column: str) -> TextSplit:
    """The split's reviews as documents: the text, or the token ids joined by spaces (one word per id)."""
    import pyarrow.parquet as pq

    split = TextSplit([], [], [])
    for file in split_files(folder, name):
        table = pq.read_table(file, columns=["review_id", "label_id", column])
        for review_id, label, value in zip(
            *(table.column(c).to_pylist() for c in table.column_names), strict=True
        ):
            if label not in features.SENTIMENT_BY_LABEL_ID:
                raise EvaluationInputError(
                    f"{file} (review_id {review_id}): label_id {label!r} is not one of "
                    f"{sorted(features.SENTIMENT_BY_LABEL_ID)}"
                )
            split.review_ids.append(str(review_id))
            split.documents.append(
                str(value or "") if column == TEXT_COLUMN else " ".join(map(str, value or []))
            )
            split.sentiments.append(features.SENTIMENT_BY_LABEL_ID[label])
    if not split.sentiments:
        raise EvaluationInputError(f"the {name} data in {folder} has no rows")
    return split


def majority_class(train_sentiments: Sequence[int]) -> tuple[int, dict[int, int]]:
    """The train split's most frequent sentiment, and the counts; a tie goes to the lowest sentiment.

    The tie rule makes the baseline the same on every run, whatever order the files were read in.
    """
    counts = Counter(train_sentiments)
    top = max(counts.values())
    return min(sentiment for sentiment, count in counts.items() if count == top), dict(counts)


def majority_baseline(train: TextSplit, test: TextSplit) -> dict[str, Any]:
    predicted, counts = majority_class(train.sentiments)
    report = compute_metrics(test.sentiments, [predicted] * len(test.sentiments))
    report["baseline"] = {
        "description": "the most frequent sentiment of the train split, predicted for every test review",
        "predicted_sentiment": predicted,
        "train_counts": {features.SENTIMENT_NAMES[s]: counts.get(s, 0) for s in SENTIMENTS},
    }
    return report


def tfidf_predictions(train: TextSplit, test: TextSplit, column: str, seed: int) -> list[int]:
    """Fit TF-IDF + logistic regression on the train documents; predict the test documents' sentiments.

    ``class_weight="balanced"``: on imbalanced data an unweighted model drifts toward the majority class,
    and a baseline that does that is no harder to beat than the majority baseline itself.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if column == TEXT_COLUMN:
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode")
    else:  # one word per token id: no lowercasing or token pattern that would drop or merge ids
        vectorizer = TfidfVectorizer(analyzer=str.split, sublinear_tf=True)
    model = make_pipeline(
        vectorizer, LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed)
    )
    model.fit(train.documents, train.sentiments)
    return [int(sentiment) for sentiment in model.predict(test.documents)]


def tfidf_baseline(train: TextSplit, test: TextSplit, column: str, seed: int) -> dict[str, Any]:
    """The text baseline's metrics, or a ``skipped`` reason when the train split cannot fit one."""
    details = {
        "description": "TF-IDF + logistic regression (class_weight=balanced) trained on the train split",
        "features": column,
        "train_examples": len(train.sentiments),
        "seed": seed,
    }
    if len(set(train.sentiments)) < 2:
        only = features.SENTIMENT_NAMES[train.sentiments[0]]
        return skipped(f"the train split holds one sentiment only ({only}): nothing to fit", details)
    try:
        predicted = tfidf_predictions(train, test, column, seed)
    except ValueError as error:  # e.g. an empty vocabulary: every document empty
        return skipped(f"cannot fit the TF-IDF baseline on the train split: {error}", details)
    return {**compute_metrics(test.sentiments, predicted), "baseline": details}


def skipped(reason: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """An entry that was not computed, with why: a reader sees the reason and ``null`` values, not no key."""
    entry: dict[str, Any] = {"skipped": reason, "accuracy": {"value": None}, "f1_macro": {"value": None}}
    if details is not None:
        entry["baseline"] = details
    return entry


def score_baselines(
    train_folder: Path | None, test_folder: Path, test_ids: Sequence[str], seed: int
) -> dict[str, Any]:
    """The ``baselines`` object of ``evaluation.json``: each baseline's metrics, or why it was skipped."""
    if train_folder is None:
        reason = "no --train-data given: the baselines need the train split"
        return {name: skipped(reason) for name in BASELINES}
    column = document_column({"train": train_folder, "test": test_folder})
    train = read_documents(train_folder, "train", column)
    test = read_documents(test_folder, "test", column)
    if test.review_ids != list(test_ids):
        raise EvaluationInputError(f"the test data in {test_folder} changed while it was read")
    if column == IDS_COLUMN:
        logger.warning("no %s column in the splits: the TF-IDF baseline reads the token ids", TEXT_COLUMN)
    return {
        MAJORITY_CLASS: majority_baseline(train, test),
        TFIDF_LOGISTIC_REGRESSION: tfidf_baseline(train, test, column, seed),
    }
