"""Evaluation step: score the trained model and two baselines on the test split; write ``evaluation.json``.

Runs under the SageMaker Processing contract: the model arrives in ``/opt/ml/processing/input/model`` as the
training job's ``model.tar.gz`` (a folder with the model files works too), the test and (optionally) train
splits as the processing step's Parquet files, and everything written to ``--output-data`` is uploaded. The
model registry shows the whole file as the model's metrics.

Accuracy alone says little on a small or imbalanced test set: a model that predicts the majority class for
every review clears an accuracy threshold. So the same test split is also scored by two baselines trained on
the train split (``--train-data``), and the gate can ask the model to beat them:

- ``majority_class``: the most frequent sentiment of the train split (ties go to the lowest sentiment),
  predicted for every test review;
- ``tfidf_logistic_regression``: TF-IDF (words and word bigrams) + class-balanced logistic regression
  (``random_state=--seed``), on the ``review_body`` text the processing step keeps beside the token ids. When
  a split lacks that column, it is trained on the token ids instead, each id a word (``features`` says which).

Without ``--train-data`` the baselines are not scored, and the file says so: each baseline, ``best_baseline``
and the margin carry a ``skipped`` reason, and the values are ``null``.

JSON paths in ``evaluation.json`` (dot-separated, as SageMaker's ``JsonGet`` reads them)::

    metrics.accuracy.value                             the model (pipeline_spec.ACCURACY_JSON_PATH)
    metrics.f1_macro.value
    metrics.precision_macro.value
    metrics.recall_macro.value
    metrics.per_class.<negative|neutral|positive>.<precision|recall|f1|support>
    baselines.<majority_class|tfidf_logistic_regression>.accuracy.value      same shape as metrics
    baselines.<majority_class|tfidf_logistic_regression>.f1_macro.value      (and the rest of it)
    best_baseline.name                                 the baseline with the highest macro-F1
    best_baseline.f1_macro.value
    f1_macro_margin_over_best_baseline.value           metrics.f1_macro.value - best_baseline.f1_macro.value

The model scores the token ids the processing step wrote, the same inputs training saw. Labels are reported as
sentiments (-1, 0, 1); in the confusion matrix, rows are the true sentiment and columns the predicted one
(scikit-learn's orientation; the course's script had ``y_true`` and ``y_pred`` swapped).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import features
from arguments import positive_int
from train import PaddingCollator, SplitDataset, TrainingInputError, read_split

logger = logging.getLogger("evaluate")

EVALUATION_FILE = "evaluation.json"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
MODEL_ARCHIVE = "model.tar.gz"
SENTIMENTS: tuple[int, ...] = tuple(sorted(features.SENTIMENT_NAMES))

MAJORITY_CLASS = "majority_class"
TFIDF_LOGISTIC_REGRESSION = "tfidf_logistic_regression"
BASELINES: tuple[str, ...] = (MAJORITY_CLASS, TFIDF_LOGISTIC_REGRESSION)
TEXT_COLUMN = "review_body"
IDS_COLUMN = "input_ids"
BASELINES_JSON_KEY = "baselines"
BEST_BASELINE_JSON_KEY = "best_baseline"
MARGIN_JSON_KEY = "f1_macro_margin_over_best_baseline"
F1_MACRO_JSON_PATH = "metrics.f1_macro.value"
BEST_BASELINE_F1_MACRO_JSON_PATH = f"{BEST_BASELINE_JSON_KEY}.f1_macro.value"
MARGIN_JSON_PATH = f"{MARGIN_JSON_KEY}.value"


class EvaluationInputError(TrainingInputError):
    """Bad input found before scoring: the message names what is wrong and where."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-path",
        type=Path,
        default=Path("/opt/ml/processing/input/model"),
        help="model.tar.gz, or a folder holding model.tar.gz or the saved model files.",
    )
    parser.add_argument("--test-data", type=Path, default=Path("/opt/ml/processing/input/test"))
    parser.add_argument(
        "--train-data",
        type=Path,
        default=None,
        help="The train split, to fit the baselines on; without it the baselines are skipped (and say so).",
    )
    parser.add_argument("--output-data", type=Path, default=Path("/opt/ml/processing/output/evaluation"))
    parser.add_argument("--max-seq-length", type=positive_int, default=128)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--seed", type=int, default=42, help="random_state of the TF-IDF baseline's model.")
    return parser.parse_args(argv)


def locate_model(model_path: Path, workspace: Path) -> Path:
    """The folder with ``config.json``: extract ``model.tar.gz`` into ``workspace`` when that is what came."""
    archive = model_path if model_path.is_file() else model_path / MODEL_ARCHIVE
    if archive.is_file():
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(workspace, filter="data")  # refuses absolute paths and links out of workspace
        except tarfile.TarError as error:
            raise EvaluationInputError(f"cannot extract the model archive {archive}: {error}") from error
        folder = workspace
    else:
        folder = model_path
    if not (folder / "config.json").is_file():
        raise EvaluationInputError(
            f"no model at {model_path}: expected {MODEL_ARCHIVE} or a saved model folder with config.json"
        )
    return folder


def load_model(folder: Path) -> tuple[Any, Any, list[int]]:
    """Model, tokenizer and class index -> sentiment, read from the model's own label map."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(folder)
    except Exception as error:  # OSError, ValueError...: the saved model is unusable either way
        raise EvaluationInputError(
            f"cannot load the model in {folder}: {type(error).__name__}: {error}"
        ) from error
    id2label = model.config.id2label
    try:
        sentiments = [int(id2label[index]) for index in range(len(id2label))]
    except (KeyError, ValueError) as error:
        raise EvaluationInputError(
            f"the model's id2label {id2label} does not map classes to sentiments"
        ) from error
    if sorted(sentiments) != list(SENTIMENTS):
        raise EvaluationInputError(
            f"the model's id2label {id2label} does not cover the sentiments {SENTIMENTS}"
        )
    return model, tokenizer, sentiments


def predict(
    model: Any, tokenizer: Any, dataset: SplitDataset, max_seq_length: int, batch_size: int
) -> list[int]:
    """Predicted class indices, in dataset order, batched and padded per batch."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=PaddingCollator(tokenizer, max_seq_length))
    predictions: list[int] = []
    with torch.inference_mode():
        for batch, _ in tqdm(loader, desc="test", leave=False):
            batch.pop("labels")
            logits = model(**{key: value.to(device) for key, value in batch.items()}).logits
            predictions.extend(logits.argmax(dim=-1).tolist())
    return predictions


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


def plot_confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    display = ConfusionMatrixDisplay.from_predictions(
        y_true,
        y_pred,
        labels=list(SENTIMENTS),
        display_labels=[features.SENTIMENT_NAMES[label] for label in SENTIMENTS],
        cmap="Blues",
        colorbar=False,
    )
    display.ax_.set(title="Test set", xlabel="predicted sentiment", ylabel="true sentiment")
    display.figure_.tight_layout()
    display.figure_.savefig(path, dpi=100)
    plt.close(display.figure_)


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    test = read_split(args.test_data, "test", args.max_seq_length)
    with tempfile.TemporaryDirectory(prefix="model-") as workspace:
        model, tokenizer, sentiments = load_model(locate_model(args.model_path, Path(workspace)))
        predicted = predict(model, tokenizer, SplitDataset(test), args.max_seq_length, args.batch_size)
    y_true = [features.SENTIMENT_BY_LABEL_ID[label] for label in test.labels]
    y_pred = [sentiments[index] for index in predicted]
    report = {"metrics": compute_metrics(y_true, y_pred)}

    args.output_data.mkdir(parents=True, exist_ok=True)
    (args.output_data / EVALUATION_FILE).write_text(json.dumps(report, indent=2), encoding="utf-8")
    plot_confusion_matrix(y_true, y_pred, args.output_data / CONFUSION_MATRIX_FILE)
    metrics = report["metrics"]
    logger.info(
        "test accuracy=%.4f f1_macro=%.4f on %d reviews; wrote %s",
        metrics["accuracy"]["value"],
        metrics["f1_macro"]["value"],
        len(y_true),
        args.output_data / EVALUATION_FILE,
    )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        evaluate(args)
    except TrainingInputError as error:
        logger.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
