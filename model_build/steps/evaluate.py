"""Evaluation step: score the trained model on the test split and write ``evaluation.json``.

Runs under the SageMaker Processing contract: the model arrives in ``/opt/ml/processing/input/model`` as the
training job's ``model.tar.gz`` (a folder with the model files works too), the test split as the processing
step's Parquet files, and everything written to ``--output-data`` is uploaded. The pipeline's condition step
reads ``metrics.accuracy.value`` from ``evaluation.json`` (``pipeline_spec.ACCURACY_JSON_PATH``); the model
registry shows the whole file as the model's metrics.

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
from collections.abc import Sequence
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
    parser.add_argument("--output-data", type=Path, default=Path("/opt/ml/processing/output/evaluation"))
    parser.add_argument("--max-seq-length", type=positive_int, default=128)
    parser.add_argument("--batch-size", type=positive_int, default=64)
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
