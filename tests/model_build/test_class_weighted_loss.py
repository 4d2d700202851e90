"""Training on an imbalanced split: the class-weighted loss keeps the model from collapsing to the majority.

The data is generated: 70% positive, 20% negative, 10% neutral reviews of random filler words, each with one
word that gives its class away. With plain cross-entropy the tiny RoBERTa sits at "always positive" (70%
accuracy, which would clear a gate on accuracy alone) for the epochs the test trains; with the inverse-frequency
weights it learns (some of) the cue words and predicts more than one class. Both runs are checked, so the test shows that the
weighting is what makes the difference, not the data being easy.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import features
import pytest
import train
import training_data

from model_build.pipeline_spec import SERVING_SOURCE_DIR
from tests.model_build.review_splits import write_split

REPO_ROOT = Path(__file__).resolve().parents[2]
FILLER = [
    "the",
    "dress",
    "fabric",
    "color",
    "size",
    "fit",
    "top",
    "wear",
    "looks",
    "order",
    "store",
    "summer",
    "length",
    "little",
    "really",
    "just",
]
CUES = {-1: "awful", 0: "okay", 1: "lovely"}
SHARES = {1: 0.7, -1: 0.2, 0: 0.1}
"""Sentiment -> share of the reviews: the 70/10/20 imbalance."""
MAX_SEQ_LENGTH = 64


def imbalanced_reviews(count: int, rng: random.Random) -> list[tuple[str, int]]:
    """``count`` (text, sentiment) pairs at ``SHARES``; 12 filler words and the class's cue word each."""
    reviews = []
    for sentiment, share in SHARES.items():
        for _ in range(round(count * share)):
            words = rng.choices(FILLER, k=12)
            words.insert(rng.randrange(len(words) + 1), CUES[sentiment])
            reviews.append((" ".join(words), sentiment))
    rng.shuffle(reviews)
    return reviews


@pytest.fixture(scope="module")
def imbalanced_splits(
    tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path
) -> tuple[dict[str, Path], list[tuple[str, int]]]:
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("imbalanced")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_roberta_dir))
    rng = random.Random(0)
    validation = imbalanced_reviews(100, rng)
    folders = {"train": root / "train", "validation": root / "validation"}
    write_split(folders["train"], imbalanced_reviews(300, rng), tokenizer, MAX_SEQ_LENGTH, "train")
    write_split(folders["validation"], validation, tokenizer, MAX_SEQ_LENGTH, "validation")
    return folders, validation


def train_and_predict(
    tmp_path: Path, pretrained: Path, splits: dict[str, Path], reviews: list[tuple[str, int]], weighted: bool
) -> tuple[list[int], dict]:
    """Train with ``--class-weighted-loss weighted``; the saved model's sentiments for ``reviews``, the report."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir, output_dir = tmp_path / "model", tmp_path / "output"
    status = train.main(
        [
            *("--pretrained-model", str(pretrained), "--epochs", "4", "--learning-rate", "0.003"),
            *("--train-batch-size", "16", "--max-seq-length", str(MAX_SEQ_LENGTH), "--seed", "42"),
            *("--class-weighted-loss", str(weighted).lower(), "--checkpoint-dir", ""),
            *("--train-data", str(splits["train"]), "--validation-data", str(splits["validation"])),
            *("--code-dir", str(REPO_ROOT / SERVING_SOURCE_DIR), "--model-dir", str(model_dir)),
            *("--output-data-dir", str(output_dir)),
        ]
    )
    assert status == 0
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoded = tokenizer([text for text, _ in reviews], padding=True, return_tensors="pt")
    with torch.no_grad():
        labels = model(**encoded).logits.argmax(dim=-1).tolist()
    report = json.loads((output_dir / train.METRICS_FILE).read_text())
    return [features.SENTIMENT_BY_LABEL_ID[label] for label in labels], report


def recall_per_sentiment(predicted: list[int], reviews: list[tuple[str, int]]) -> dict[int, float]:
    hits, totals = Counter(), Counter()
    for guess, (_, truth) in zip(predicted, reviews, strict=True):
        totals[truth] += 1
        hits[truth] += guess == truth
    return {sentiment: hits[sentiment] / totals[sentiment] for sentiment in totals}


def test_weighted_loss_predicts_every_class_where_plain_loss_collapses(
    tmp_path: Path, tiny_roberta_dir: Path, imbalanced_splits: tuple[dict[str, Path], list[tuple[str, int]]]
) -> None:
    splits, validation = imbalanced_splits

    plain, plain_report = train_and_predict(tmp_path / "plain", tiny_roberta_dir, splits, validation, False)
    # The setup is one where the imbalance bites: without weights every review gets the majority class.
    assert set(plain) == {1}, f"the unweighted model did not collapse: {Counter(plain)}"
    assert plain_report["class_weights"] is None

    weighted, report = train_and_predict(tmp_path / "weighted", tiny_roberta_dir, splits, validation, True)
    assert len(set(weighted)) > 1, f"the weighted model predicts only {Counter(weighted)}"
    # Mean recall over the classes: exactly 1/3 for the collapsed model, well above it for one that learned.
    recall = recall_per_sentiment(weighted, validation)
    assert sum(recall.values()) / len(recall) >= 0.6, f"recall per sentiment {recall}"
    # 300 train reviews: 60 negative, 30 neutral, 210 positive -> n / (3 * count).
    assert report["class_weights"] == pytest.approx(
        {"negative": 300 / 180, "neutral": 300 / 90, "positive": 300 / 630}
    )
    assert report["hyperparameters"]["class_weighted_loss"] is True


def test_class_weights_are_inverse_frequencies() -> None:
    assert training_data.class_weights([0, 1, 2] * 5) == [1.0, 1.0, 1.0]  # balanced: on changes nothing
    assert training_data.class_weights([0, 0, 0, 1, 2, 2]) == pytest.approx([6 / 9, 6 / 3, 6 / 6])
    # A class missing from the train split is never a target; the others still share the loss equally.
    assert training_data.class_weights([0, 2, 2, 2]) == pytest.approx([4 / 2, 1.0, 4 / 6])
    assert train.describe_weights([2.0, 1.0, 0.5]) == "negative 2.0000, neutral 1.0000, positive 0.5000"
    assert train.describe_weights(None) == "off (plain cross-entropy)"


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("false", False), ("TRUE", True)])
def test_class_weighted_loss_is_on_by_default(value: str | None, expected: bool) -> None:
    argv = [] if value is None else ["--class-weighted-loss", value]
    assert train.parse_args(argv).class_weighted_loss is expected
