"""Constructed baselines and capture windows for the monitoring job's tests.

A word-level tokenizer (one token per word, ``<s> ... </s>`` around each review) makes lengths exact: a review
of ``n`` words is ``n + 2`` tokens. Capture lines are written in SageMaker's shape and layout, as
``model_deploy/local/capture.py`` writes them.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import drift

WORDS = [f"w{i}" for i in range(200)]
UNSEEN_WORDS = [f"x{i}" for i in range(50)]
"""In the tokenizer's vocabulary, never in the "train split": unseen tokens."""


def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"<s>": 0, "</s>": 1, "<unk>": 2}
    for word in [*WORDS, *UNSEEN_WORDS]:
        vocab[word] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 1)]
    )
    return tokenizer


def known_ids() -> list[int]:
    return [3 + i for i in range(len(WORDS))]


def reviews(count: int, lengths: Sequence[int], seed: int = 0, words: Sequence[str] = WORDS) -> list[str]:
    """``count`` reviews whose word counts cycle through ``lengths``."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(lengths[i % len(lengths)])) for i in range(count)]


def predictions(count: int, shares: dict[str, float]) -> list[tuple[str, float]]:
    """``count`` (sentiment, probability) pairs in the given shares, probability 0.9."""
    result: list[tuple[str, float]] = []
    for name, share in shares.items():
        result.extend((name, 0.9) for _ in range(round(count * share)))
    while len(result) < count:
        result.append((next(iter(shares)), 0.9))
    return result[:count]


IN_DISTRIBUTION_LENGTHS = (5, 12, 20, 30, 40, 25, 14, 8)
BASE_SHARES = {"negative": 0.2, "neutral": 0.1, "positive": 0.7}
MAX_SEQ_LENGTH = 64


def write_baseline(folder: Path, count: int = 400) -> Path:
    texts = reviews(count, IN_DISTRIBUTION_LENGTHS, seed=1)
    counter = drift.TokenCounter(word_tokenizer(), known_ids(), MAX_SEQ_LENGTH)
    profile = drift.TextProfile()
    counter.count(texts, profile)
    for sentiment, probability in predictions(count, BASE_SHARES):
        profile.add_prediction(sentiment, probability)
    labels = {name: round(count * share) for name, share in BASE_SHARES.items()}
    baseline = drift.Baseline(profile, labels, MAX_SEQ_LENGTH, "train split")
    drift.write_baseline(folder, baseline, counter.tokenizer, known_ids())
    return folder


def capture_line(
    texts: Sequence[str],
    answers: Sequence[tuple[str, float]] | None,
    time: datetime,
    content_type: str = "application/json",
    raw_request: bytes | None = None,
) -> str:
    if raw_request is not None:
        request = {"observedContentType": content_type, "mode": "INPUT", "encoding": "BASE64",
                   "data": base64.b64encode(raw_request).decode()}  # fmt: skip
    elif content_type == "text/csv":
        request = {"observedContentType": content_type, "mode": "INPUT", "encoding": "CSV",
                   "data": "\n".join(texts)}  # fmt: skip
    else:
        request = {"observedContentType": content_type, "mode": "INPUT", "encoding": "JSON",
                   "data": json.dumps({"features": list(texts)})}  # fmt: skip
    body = [
        {"sentiment": name, "probability": p, "predicted_label": 0, "probabilities": {}}
        for name, p in (answers or [])
    ]
    response = {"observedContentType": "application/json", "mode": "OUTPUT", "encoding": "JSON",
                "data": json.dumps(body)}  # fmt: skip
    return json.dumps(
        {
            "captureData": {"endpointInput": request, "endpointOutput": response},
            "eventMetadata": {
                "eventId": str(uuid.uuid4()),
                "inferenceTime": time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            },
            "eventVersion": "0",
        }
    )


def write_window(
    root: Path,
    texts: Sequence[str],
    answers: Sequence[tuple[str, float]],
    time: datetime,
    per_request: int = 4,
    extra_lines: Sequence[str] = (),
    variant: str = "AllTraffic",
) -> Path:
    """One capture file under ``root/<variant>/yyyy/mm/dd/hh/`` with requests of ``per_request`` reviews."""
    folder = root / variant / time.astimezone(UTC).strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        capture_line(texts[i : i + per_request], answers[i : i + per_request], time)
        for i in range(0, len(texts), per_request)
    ]
    path = folder / f"{uuid.uuid4()}.jsonl"
    path.write_text("\n".join([*lines, *extra_lines]) + "\n", encoding="utf-8")
    return path
