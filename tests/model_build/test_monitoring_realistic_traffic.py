"""The monitoring baseline describes the traffic a model will see, not its balanced test split.

Traffic drawn from the training data's own distribution (on the sample, about 77% positive) must read as
``no_drift``; a stream of very different text must read as ``drift``. The baseline here is built the way the
evaluation step builds it (:func:`drift.class_mixture` with the data check's class shares) from a balanced
test split of the sample, counted with the bundled MiniLM's tokenizer; the model is taken to answer each
review's true class, so that the predicted classes follow the reviews, as a good model's do.
"""

from __future__ import annotations

import argparse
import inspect
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import check_data
import drift
import monitor
import pytest

from tests.model_build import monitoring_windows as w
from tests.model_build.review_splits import sample_reviews

MAX_SEQ_LENGTH = 128
NOW = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
WINDOW = ["--since", "2026-12-01T12:00:00Z", "--until", "2026-12-01T13:00:00Z"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path) -> dict:
    """The sample's reviews, its data check report's class shares, a balanced held-out test split."""
    report_dir = tmp_path_factory.mktemp("data-check")
    assert check_data.main(["--input-data", str(sample_csv), "--output-data", str(report_dir)]) == 0
    by_sentiment = json.loads((report_dir / check_data.REPORT_FILE).read_text())["labels"]["by_sentiment"]
    shares = {name: entry["share"] for name, entry in by_sentiment.items()}
    reviews = [(text, drift.SENTIMENT_NAMES[sentiment + 1]) for text, sentiment in sample_reviews(sample_csv)]
    rng = random.Random(11)
    shuffled = rng.sample(reviews, len(reviews))
    per_class = 60
    test = [
        review
        for name in drift.SENTIMENT_NAMES
        for review in [r for r in shuffled if r[1] == name][:per_class]
    ]
    train = [review for review in shuffled if review not in test]
    return {"shares": shares, "reviews": reviews, "test": test, "train": train, "report": report_dir}


def write_baseline(folder: Path, data: dict, minilm_dir: Path, weighted: bool) -> Path:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    known = {token for text, _ in data["train"] for token in tokenizer.encode(text).ids}
    counter = drift.TokenCounter(tokenizer, known, MAX_SEQ_LENGTH)
    by_class = {name: drift.TextProfile() for name in drift.SENTIMENT_NAMES}
    for name, profile in by_class.items():
        texts = [text for text, truth in data["test"] if truth == name]
        counter.count(texts, profile)
        for _ in texts:
            profile.add_prediction(name, 0.9)
    labels = {name: profile.reviews for name, profile in by_class.items()}
    if weighted:
        profile, _ = drift.class_mixture(by_class, data["shares"])
    else:
        profile = drift.TextProfile()
        for part in by_class.values():
            profile.merge(part)
    baseline = drift.Baseline(profile, labels, MAX_SEQ_LENGTH, "train split")
    drift.write_baseline(folder, baseline, counter.tokenizer, known)
    return folder


def judge(baseline: Path, texts: list[str], answers: list[tuple[str, float]], tmp_path: Path) -> dict:
    w.write_window(tmp_path / "captures", texts, answers, NOW)
    arguments = ["--baseline", str(baseline), "--captures", str(tmp_path / "captures")]
    assert monitor.main([*arguments, "--output-data", str(tmp_path / "out"), *WINDOW, "--no-progress"]) == 0
    return json.loads((tmp_path / "out" / monitor.REPORT_FILE).read_text())


def realistic_traffic(data: dict, count: int = 1200) -> tuple[list[str], list[tuple[str, float]]]:
    """``count`` reviews drawn from the sample itself, in its own class proportions."""
    drawn = random.Random(5).choices(data["reviews"], k=count)
    return [text for text, _ in drawn], [(truth, 0.9) for _, truth in drawn]


def test_the_sample_is_unbalanced_and_the_test_split_balanced(data: dict) -> None:
    assert data["shares"]["positive"] > 0.7
    assert {truth for _, truth in data["test"]} == set(drift.SENTIMENT_NAMES)


def test_realistic_traffic_is_no_drift_against_the_weighted_baseline(
    data: dict, minilm_dir: Path, tmp_path: Path
) -> None:
    texts, answers = realistic_traffic(data)
    baseline = write_baseline(tmp_path / "weighted", data, minilm_dir, weighted=True)
    report = judge(baseline, texts, answers, tmp_path / "weighted-run")
    assert report["verdict"] == "no_drift", report["violations"]
    predicted = report["baseline"]["predicted_shares"]
    assert predicted["positive"] == pytest.approx(data["shares"]["positive"], abs=0.02)
    # the balanced split as it is, the baseline before: the same traffic read as drift
    unweighted = write_baseline(tmp_path / "unweighted", data, minilm_dir, weighted=False)
    before = judge(unweighted, texts, answers, tmp_path / "unweighted-run")
    assert before["verdict"] == "drift"
    assert any(v["feature_name"] == "predicted_sentiment" for v in before["violations"]), before["violations"]


def test_a_stream_of_very_different_text_is_drift(data: dict, minilm_dir: Path, tmp_path: Path) -> None:
    """Python's own module documentation sent as reviews, answered in the data's class shares: the text
    alone (its lengths, its vocabulary) must give it away."""
    docs = [
        inspect.getdoc(member) or ""
        for module in (argparse, json, inspect, random, drift, monitor)
        for member in (module, *vars(module).values())
        if inspect.isfunction(member) or inspect.isclass(member) or inspect.ismodule(member)
    ]
    texts = [text for text in docs if len(text) > 200][:400]
    assert len(texts) >= 100
    _, answers = realistic_traffic(data, len(texts))
    baseline = write_baseline(tmp_path / "weighted", data, minilm_dir, weighted=True)
    report = judge(baseline, texts, answers, tmp_path / "run")
    assert report["verdict"] == "drift"
    failed = {check["threshold"] for check in report["checks"] if check["passed"] is False}
    assert failed & {"max_length_psi", "max_length_js", "max_unseen_token_share_increase"}, failed
    assert "max_prediction_psi" not in failed
