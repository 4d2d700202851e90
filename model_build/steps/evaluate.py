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
- ``tfidf_logistic_regression``: TF-IDF (words and word bigrams) + class-balanced logistic regression, on the
  ``review_body`` text the processing step keeps beside the token ids. When a split lacks that column, it is
  trained on the token ids instead, each id a word (``features`` says which). Its lbfgs solver is
  deterministic; ``random_state=--seed`` is passed (and recorded) so that a change of solver stays repeatable.

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
    f1_macro_margin_over_baselines.<majority_class|tfidf_logistic_regression>.value    the same, per baseline
    champion.<accuracy|f1_macro|...>.value             the champion (the version production serves), scored
    f1_macro_margin_over_champion.value                  the same way on the same split (see champion.py)
    champion_check.holds                               what the gate reads: margin >= MinChampionMargin, or
                                                       no champion
    onnx_int8.packaged                                 whether the package (--package-output) carries the
    onnx_int8.message                                    int8 ONNX model, and why (not)
    onnx_int8.parity.<label_agreement|f1_macro_difference|max_probability_difference>.value
    onnx_int8.parity.holds / .failures                 the int8 model vs the PyTorch model on the test split

With ``--package-output`` the step also writes the package the pipeline registers: the trained model's files and,
when it answers like the PyTorch model (``onnx_int8.py``), its int8 ONNX export, which the serving handler runs
with ONNX Runtime on CPU. Here, because the test split and the PyTorch model's answers are here.

The model scores the token ids the processing step wrote, the same inputs training saw. Labels are reported as
sentiments (-1, 0, 1); in the confusion matrix, rows are the true sentiment and columns the predicted one
(scikit-learn's orientation; the course's script had ``y_true`` and ``y_pred`` swapped).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import champion
import drift
import features
import onnx_int8
import tracking
from arguments import positive_int
from baselines import (
    BASELINES,
    BASELINES_JSON_KEY,
    BEST_BASELINE_JSON_KEY,
    IDS_COLUMN,
    MARGIN_JSON_KEY,
    SENTIMENTS,
    TEXT_COLUMN,
    EvaluationInputError,
    compute_metrics,
    score_baselines,
    split_files,
)
from evaluation_pictures import plot_confusion_matrix
from training_data import SplitDataset, TrainingInputError, make_collator, model_inputs, read_split

logger = logging.getLogger("evaluate")

EVALUATION_FILE = tracking.EVALUATION_REPORT_FILE
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
MODEL_ARCHIVE = "model.tar.gz"

MARGINS_JSON_KEY = "f1_macro_margin_over_baselines"
F1_MACRO_JSON_PATH = "metrics.f1_macro.value"
BEST_BASELINE_F1_MACRO_JSON_PATH = f"{BEST_BASELINE_JSON_KEY}.f1_macro.value"
MARGIN_JSON_PATH = f"{MARGIN_JSON_KEY}.value"
ONNX_INT8_JSON_KEY = "onnx_int8"


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
    parser.add_argument(
        "--class-shares",
        type=Path,
        default=None,
        help="The data check's report (data_check.json): the monitoring baseline weights each "
        "class of the test split to its share of the data, as traffic comes; without it, as the split is.",
    )
    parser.add_argument(
        "--package-output",
        type=Path,
        default=None,
        help=f"Where to write the package the pipeline registers ({MODEL_ARCHIVE}): the trained model, plus "
        f"its int8 ONNX model ({onnx_int8.INT8_MODEL_FILE}) when it passes the parity rule below. Without it, "
        "nothing is exported.",
    )
    rule = onnx_int8.ParityRule()
    parser.add_argument(
        "--min-onnx-label-agreement",
        type=float,
        default=rule.min_label_agreement,
        help="Share of test reviews the int8 model must label as the PyTorch model does.",
    )
    parser.add_argument(
        "--max-onnx-f1-macro-difference",
        type=float,
        default=rule.max_f1_macro_difference,
        help="Largest macro-F1 difference (on the test split) between the int8 and the PyTorch model.",
    )
    parser.add_argument(
        "--max-onnx-probability-difference",
        type=float,
        default=rule.max_probability_difference,
        help="Largest difference of any one class probability of any test review.",
    )
    champion.add_arguments(parser)
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
    return top_classes(predict_probabilities(model, tokenizer, dataset, max_seq_length, batch_size))[0]


def top_classes(rows: Sequence[Sequence[float]]) -> tuple[list[int], list[float]]:
    """Each row's class index and its probability: the prediction and its confidence.

    The probabilities are the monitoring baseline's confidence: the endpoint answers the same softmax.
    """
    best = [max(range(len(row)), key=row.__getitem__) for row in rows]
    return best, [float(row[index]) for row, index in zip(rows, best, strict=True)]


def batches(tokenizer: Any, dataset: SplitDataset, max_seq_length: int, batch_size: int) -> Any:
    """The dataset as padded model inputs, in order: both the PyTorch and the ONNX model read these."""
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=make_collator(tokenizer, max_seq_length))
    return (model_inputs(batch) for batch in loader)


def predict_probabilities(
    model: Any, tokenizer: Any, dataset: SplitDataset, max_seq_length: int, batch_size: int
) -> list[list[float]]:
    """Every review's softmax row, in dataset order."""
    import torch
    from tqdm.auto import tqdm

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    rows: list[list[float]] = []
    with torch.inference_mode():
        for batch in tqdm(batches(tokenizer, dataset, max_seq_length, batch_size), desc="test", leave=False):
            logits = model(**{key: value.to(device) for key, value in batch.items()}).logits
            rows.extend(logits.float().softmax(dim=-1).tolist())
    return rows


def compare(metrics: dict[str, Any], baselines: dict[str, Any]) -> dict[str, Any]:
    """``best_baseline`` (highest macro-F1; on a tie, the first in :data:`BASELINES`) and the model's margins.

    A skipped baseline has a ``null`` margin with the reason beside it, so that a gate reading the path finds
    it and fails on it rather than on a missing key.
    """
    model_f1 = metrics["f1_macro"]["value"]
    margins = {
        name: {"skipped": entry["skipped"], "value": None}
        if "skipped" in entry
        else {"value": model_f1 - entry["f1_macro"]["value"]}
        for name, entry in baselines.items()
    }
    scored = [name for name in BASELINES if "skipped" not in baselines[name]]
    if not scored:
        reason = "; ".join(sorted({baselines[name]["skipped"] for name in BASELINES}))
        return {
            BEST_BASELINE_JSON_KEY: {"name": None, "f1_macro": {"value": None}, "skipped": reason},
            MARGIN_JSON_KEY: {"value": None, "skipped": reason},
            MARGINS_JSON_KEY: margins,
        }
    best = max(scored, key=lambda name: (baselines[name]["f1_macro"]["value"], -BASELINES.index(name)))
    return {
        BEST_BASELINE_JSON_KEY: {
            "name": best,
            "f1_macro": {"value": baselines[best]["f1_macro"]["value"]},
            "accuracy": {"value": baselines[best]["accuracy"]["value"]},
        },
        MARGIN_JSON_KEY: margins[best],
        MARGINS_JSON_KEY: margins,
    }


def score_champion(
    args: argparse.Namespace, test: Any, tokenizer: Any, y_true: Sequence[int]
) -> dict[str, Any]:
    """The ``champion`` entry: the champion scored like the new model, on the same test reviews.

    A champion with the new model's tokenizer reads the same token ids; one with another vocabulary (another
    ``PretrainedModel``) gets the reviews' text tokenized by its own tokenizer, as its endpoint would.
    """
    named = champion.arguments(args)
    if not named.named:
        return champion.no_champion(named.absent_reason())
    with tempfile.TemporaryDirectory(prefix="champion-") as workspace:
        try:
            archive = champion.fetch(named.model_url, Path(workspace))
            unpacked = Path(workspace) / "model"
            unpacked.mkdir()
            model, its_tokenizer, sentiments = load_model(locate_model(archive, unpacked))
            dataset = test
            if (
                type(its_tokenizer) is not type(tokenizer)
                or its_tokenizer.get_vocab() != tokenizer.get_vocab()
            ):
                texts, real = split_texts(args.test_data, test.review_ids, tokenizer)
                if not real:
                    raise EvaluationInputError(
                        f"its tokenizer differs from the new model's and the test split has no {TEXT_COLUMN} "
                        "to tokenize again"
                    )
                encoded = its_tokenizer(texts, truncation=True, max_length=args.max_seq_length)
                dataset = dataclasses.replace(test, input_ids=encoded["input_ids"])
                logger.info("the champion has its own tokenizer: the test reviews are tokenized again for it")
            predicted = predict(
                model, its_tokenizer, SplitDataset(dataset), args.max_seq_length, args.batch_size
            )
        except (EvaluationInputError, champion.ChampionError) as error:
            raise champion.ChampionError(
                f"the champion {named.model_package_arn or named.model_url} cannot be scored: {error}. To "
                "evaluate without it: --param ChampionModelPackageArn=none"
            ) from error
    metrics = compute_metrics(y_true, [sentiments[index] for index in predicted])
    return champion.champion_entry(named, metrics)


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    test = read_split(args.test_data, "test", args.max_seq_length)
    if args.train_data is not None:  # a bad train folder fails before the model's slow scoring
        split_files(args.train_data, "train")
    if args.class_shares is not None:  # so does a missing data check report
        data_class_shares(args.class_shares)
    champion.arguments(args)  # a champion named without its model fails before the scoring, too
    y_true = [features.SENTIMENT_BY_LABEL_ID[label] for label in test.labels]
    with tempfile.TemporaryDirectory(prefix="model-") as workspace:
        folder = locate_model(args.model_path, Path(workspace))
        model, tokenizer, sentiments = load_model(folder)
        rows = predict_probabilities(
            model, tokenizer, SplitDataset(test), args.max_seq_length, args.batch_size
        )
        predicted, confidence = top_classes(rows)

        def f1_macro(classes: Sequence[int]) -> float:
            return float(
                compute_metrics(y_true, [sentiments[index] for index in classes])["f1_macro"]["value"]
            )

        int8_entry = package_model(args, folder, model, tokenizer, test, rows, f1_macro)
    y_pred = [sentiments[index] for index in predicted]
    report: dict[str, Any] = {"metrics": compute_metrics(y_true, y_pred)}
    report[ONNX_INT8_JSON_KEY] = int8_entry
    report[BASELINES_JSON_KEY] = score_baselines(args.train_data, args.test_data, test.review_ids, args.seed)
    report.update(compare(report["metrics"], report[BASELINES_JSON_KEY]))
    report[champion.CHAMPION_JSON_KEY] = score_champion(args, test, tokenizer, y_true)
    report.update(
        champion.compare(report["metrics"], report[champion.CHAMPION_JSON_KEY], args.min_champion_margin)
    )

    args.output_data.mkdir(parents=True, exist_ok=True)
    (args.output_data / EVALUATION_FILE).write_text(json.dumps(report, indent=2), encoding="utf-8")
    plot_confusion_matrix(y_true, y_pred, report, args.output_data / CONFUSION_MATRIX_FILE)
    write_monitoring_baseline(args, test.review_ids, y_true, y_pred, confidence, tokenizer)
    metrics = report["metrics"]
    logger.info(
        "test accuracy=%.4f f1_macro=%.4f on %d reviews; wrote %s",
        metrics["accuracy"]["value"],
        metrics["f1_macro"]["value"],
        len(y_true),
        args.output_data / EVALUATION_FILE,
    )
    for name, entry in report[BASELINES_JSON_KEY].items():
        if "skipped" in entry:
            logger.warning("baseline %s skipped: %s", name, entry["skipped"])
        else:
            logger.info(
                "baseline %s: accuracy=%.4f f1_macro=%.4f",
                name,
                entry["accuracy"]["value"],
                entry["f1_macro"]["value"],
            )
    if report[MARGIN_JSON_KEY]["value"] is not None:
        logger.info(
            "f1_macro margin over the best baseline (%s): %+.4f",
            report[BEST_BASELINE_JSON_KEY]["name"],
            report[MARGIN_JSON_KEY]["value"],
        )
    check = report[champion.CHAMPION_CHECK_JSON_KEY]
    logger.info("champion: %s", check["message"])
    (logger.info if int8_entry["packaged"] else logger.warning)("int8 ONNX: %s", int8_entry["message"])
    # The execution's MLflow run: the test metrics beside the baselines' and the champion's, the files.
    tracking.log_evaluation_report(tracking.from_environment(), report, args.output_data)
    return report


# ------------------------------------------------------------------------------------------ packaging
def package_model(
    args: argparse.Namespace,
    folder: Path,
    model: Any,
    tokenizer: Any,
    test: Any,
    reference: Sequence[Sequence[float]],
    f1_macro: Any,
) -> dict[str, Any]:
    """Write the package the pipeline registers (``--package-output``) and return the ``onnx_int8`` entry.

    The package is the trained model's folder (weights, tokenizer, ``code/``) plus its int8 ONNX model when that
    model answers the test split like the PyTorch one (:class:`onnx_int8.ParityRule`); otherwise the package
    serves with PyTorch and the entry says why. An export that fails is recorded the same way: the PyTorch
    model is still a good model.
    """
    if args.package_output is None:
        return {
            "packaged": False,
            "file": None,
            "message": "not exported: no --package-output (this evaluation packages nothing)",
        }
    rule = onnx_int8.ParityRule(
        args.min_onnx_label_agreement, args.max_onnx_f1_macro_difference, args.max_onnx_probability_difference
    )
    with tempfile.TemporaryDirectory(prefix="onnx-") as extra:
        try:
            int8 = onnx_int8.export_int8(model, tokenizer, Path(extra))
            session = onnx_int8.session(int8)
        except Exception as error:  # an architecture the exporter or ONNX Runtime cannot take
            logger.exception("the int8 ONNX export failed")
            write_package(folder, {}, args.package_output / MODEL_ARCHIVE)
            return {
                "packaged": False,
                "file": None,
                "message": f"not packaged: the export failed ({type(error).__name__}: {error}); "
                "the package serves with PyTorch",
            }
        candidate = onnx_int8.probabilities(
            session, batches(tokenizer, SplitDataset(test), args.max_seq_length, args.batch_size)
        )
        parity = onnx_int8.parity(reference, candidate, f1_macro, rule)
        holds = bool(parity["holds"])
        write_package(
            folder, {onnx_int8.INT8_MODEL_FILE: int8} if holds else {}, args.package_output / MODEL_ARCHIVE
        )
    figures = (
        f"label agreement {parity['label_agreement']['value']:.4f}, macro-F1 difference "
        f"{parity['f1_macro_difference']['value']:.4f}, max probability difference "
        f"{parity['max_probability_difference']['value']:.4f} on {parity['examples']} test reviews"
    )
    message = (
        f"packaged {onnx_int8.INT8_MODEL_FILE}: {figures}"
        if holds
        else f"not packaged, parity failed: {'; '.join(parity['failures'])} ({figures}); "
        "the package serves with PyTorch"
    )
    return {
        "packaged": holds,
        "file": onnx_int8.INT8_MODEL_FILE if holds else None,
        "parity": parity,
        "message": message,
    }


def write_package(folder: Path, extra: dict[str, Path], archive: Path) -> Path:
    """``archive`` (gzipped tar): every file of ``folder`` under its relative name, then ``extra`` (name -> file)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(folder).as_posix())
        for name, path in extra.items():
            tar.add(path, arcname=name)
    logger.info("model package: %s (%.1f MB)", archive, archive.stat().st_size / 1e6)
    return archive


# ------------------------------------------------------------------------------------------ monitoring
def split_texts(folder: Path, review_ids: Sequence[str], tokenizer: Any) -> tuple[list[str], bool]:
    """The test reviews' text, in ``review_ids`` order, and whether it is the real text.

    Splits written without ``review_body`` give the text decoded from the (truncated) ids: lengths then stop
    at the max length, and the baseline says so.
    """
    import pyarrow.parquet as pq

    texts: list[str] = []
    ids: list[str] = []
    real = True
    for file in split_files(folder, "test"):
        columns = pq.read_schema(file).names
        column = TEXT_COLUMN if TEXT_COLUMN in columns else IDS_COLUMN
        real = real and column == TEXT_COLUMN
        table = pq.read_table(file, columns=["review_id", column])
        for review_id, value in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
            ids.append(str(review_id))
            texts.append(
                str(value or "")
                if column == TEXT_COLUMN
                else tokenizer.decode(value, skip_special_tokens=True)
            )
    if ids != list(review_ids):
        raise EvaluationInputError(f"the test data in {folder} changed while it was read")
    return texts, real


def known_token_ids(folder: Path, name: str) -> set[int]:
    """Every token id of the split's ``input_ids`` (truncated as training saw them)."""
    import pyarrow.parquet as pq

    known: set[int] = set()
    for file in split_files(folder, name):
        for ids in pq.read_table(file, columns=[IDS_COLUMN]).column(IDS_COLUMN).to_pylist():
            known.update(int(token) for token in ids or [])
    return known


def data_class_shares(path: Path) -> dict[str, float]:
    """Each sentiment's share of the labelled rows in the data check's report (``labels.by_sentiment``)."""
    try:
        by_sentiment = json.loads(path.read_text(encoding="utf-8"))["labels"]["by_sentiment"]
        return {name: float(by_sentiment[name]["share"]) for name in drift.SENTIMENT_NAMES}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise EvaluationInputError(
            f"--class-shares {path}: no data check report with labels.by_sentiment shares ({error!r})"
        ) from None


def write_monitoring_baseline(
    args: argparse.Namespace,
    review_ids: Sequence[str],
    y_true: Sequence[int],
    y_pred: Sequence[int],
    confidence: Sequence[float],
    tokenizer: Any,
) -> Path | None:
    """``monitoring-baseline/`` in the output: the test split's profile that monitoring compares traffic with,
    each class weighted to its share of the data (``--class-shares``; :func:`drift.class_mixture`).

    Counted by :mod:`drift`, the module the monitoring job counts with, from the model's own tokenizer
    (saved beside it). "Unseen" tokens are those the train split never held (the test split's own, without
    ``--train-data``).
    """
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        logger.warning("the model's tokenizer is not a fast one: no monitoring baseline written")
        return None
    texts, real_text = split_texts(args.test_data, review_ids, tokenizer)
    if args.train_data is not None:
        known, source = known_token_ids(args.train_data, "train"), "train split"
    else:
        known, source = known_token_ids(args.test_data, "test"), "test split (no --train-data)"
    counter = drift.TokenCounter(Tokenizer.from_str(backend.to_str()), known, args.max_seq_length)
    by_class = {name: drift.TextProfile() for name in drift.SENTIMENT_NAMES}  # by true class
    truths = [features.SENTIMENT_NAMES[truth] for truth in y_true]
    for name, profile in by_class.items():
        counter.count([text for text, truth in zip(texts, truths, strict=True) if truth == name], profile)
    for truth, sentiment, probability in zip(truths, y_pred, confidence, strict=True):
        by_class[truth].add_prediction(features.SENTIMENT_NAMES[sentiment], probability)
    label_counts = {name: by_class[name].reviews for name in drift.SENTIMENT_NAMES}
    model: dict[str, Any] = {
        "review_text": "review_body" if real_text else "decoded from truncated input_ids",
        "test_reviews": len(texts),
        "test_label_counts": label_counts,
    }
    profile = drift.TextProfile()
    for part in by_class.values():
        profile.merge(part)
    if args.class_shares is not None:
        shares = data_class_shares(args.class_shares)
        profile, weights = drift.class_mixture(by_class, shares)
        label_counts = {name: round(by_class[name].reviews * weights[name]) for name in drift.SENTIMENT_NAMES}
        model |= {"weighted_to_class_shares": shares, "class_weights": weights}
    baseline = drift.Baseline(profile, label_counts, args.max_seq_length, source, model=model)
    path = drift.write_baseline(args.output_data / drift.BASELINE_FOLDER, baseline, counter.tokenizer, known)
    logger.info(
        "monitoring baseline: %d reviews, %.1f%% truncated, %.2f%% unseen tokens, mean top probability %.3f; wrote %s",
        profile.reviews,
        100 * (profile.truncated_share or 0),
        100 * (profile.unseen_token_share or 0),
        profile.mean_top_probability or 0,
        path,
    )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        evaluate(args)
    except (TrainingInputError, champion.ChampionError) as error:
        logger.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
