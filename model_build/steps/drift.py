"""What the model saw at evaluation time, and what an endpoint sees now, as counts that can be compared.

The evaluation step profiles the held-out test split, each class weighted to its share of the data
(:func:`class_mixture`: the split may be balanced, traffic is not), and writes it (:func:`write_baseline`);
the monitoring job (``monitor.py``)
profiles a window of captured traffic the same way, with the same tokenizer and the same bins, and
:func:`compare` measures the distance between the two. One module for both sides, so that a baseline and a
window can only differ in the data, never in how it was counted.

A profile is counts only (:class:`TextProfile`): it grows one review at a time in constant memory, so a window
of a million requests costs what a window of ten does, and two profiles can be merged.

The statistics suit text, where there are no numeric columns to compare:

- review length in tokens (the model's tokenizer, special tokens included, before truncation) in fixed bins,
  compared by population stability index (PSI) and Jensen-Shannon distance (base 2, 0 = same, 1 = disjoint);
- predicted classes, compared the same way (the baseline also keeps the true labels' shares, for reading);
- the share of reviews longer than the model reads (truncated), the share of tokens the train split never
  held ("unseen": a new vocabulary, a new language), and the mean top-class probability (confidence).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import features

BASELINE_SCHEMA = "review-sentiment-monitoring-baseline/1"
BASELINE_FILE = "baseline.json"
TOKENIZER_FILE = "tokenizer.json"
KNOWN_TOKENS_FILE = "known_token_ids.json"
BASELINE_FOLDER = "monitoring-baseline"
"""The folder the evaluation step writes beside ``evaluation.json``; the monitoring job reads all of it."""

CODE_FOLDER = "code"
CODE_FILES: tuple[str, ...] = (
    "monitor.py",
    "capture_window.py",
    "drift.py",
    "drift_checks.py",
    "monitoring_thresholds.py",
    "features.py",
    "review_rule.py",
    "human_loops.py",
    "requirements.txt",
)
"""The monitoring job and what it imports, copied into the baseline: the code that reads a baseline is the
code that wrote it (the scheduled job on AWS runs ``<baseline>/code/monitor.py``). The human-loop job
(``human_loops.py`` and its rule) rides along: it reads the same captures for the same version. A test holds
the list to what the two jobs import (``model_build.code_upload.CodeSet.script``), which this script cannot
import."""

LENGTH_BIN_EDGES: tuple[int, ...] = (0, 16, 32, 48, 64, 96, 128, 160, 256, 512)
"""Lower edges of the token-length bins; the last bin is open (512 tokens and more)."""

SENTIMENT_NAMES: tuple[str, ...] = tuple(
    features.SENTIMENT_NAMES[s] for s in sorted(features.SENTIMENT_NAMES)
)
PSI_PSEUDO_COUNT = 0.5
"""Added to every bin's count before PSI (additive smoothing), whose logarithm is infinite for an empty bin.

A floor on the share instead (say 1e-4) makes one review missing from a bin the baseline holds once cost more
than a real shift: on a test split of a few hundred reviews, windows drawn from that very split then read as
drift. Half a review per bin keeps an empty bin finite and a real shift large."""


class BaselineError(ValueError):
    """A baseline folder that cannot be used: the message names the file and what is wrong."""


def length_bin(length: int) -> int:
    """The index of the bin that holds a review of ``length`` tokens."""
    index = 0
    for position, edge in enumerate(LENGTH_BIN_EDGES):
        if length >= edge:
            index = position
    return index


def length_bin_labels() -> list[str]:
    edges = LENGTH_BIN_EDGES
    return [f"{low}-{high - 1}" for low, high in itertools.pairwise(edges)] + [f"{edges[-1]}+"]


@dataclass
class TextProfile:
    """Counts over a set of reviews: lengths, truncation, unseen tokens, predictions, confidence."""

    reviews: int = 0
    length_counts: list[int] = field(default_factory=lambda: [0] * len(LENGTH_BIN_EDGES))
    truncated: int = 0
    tokens: int = 0
    unseen_tokens: int = 0
    predicted_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SENTIMENT_NAMES, 0))
    predictions: int = 0
    top_probability_sum: float = 0.0

    def add_review(self, length: int, unseen: int, content_tokens: int, max_seq_length: int) -> None:
        """One review's tokens: ``length`` with special tokens, ``unseen`` of its ``content_tokens``."""
        self.reviews += 1
        self.length_counts[length_bin(length)] += 1
        self.truncated += length > max_seq_length
        self.tokens += content_tokens
        self.unseen_tokens += unseen

    def add_prediction(self, sentiment: str, probability: float) -> None:
        self.predicted_counts[sentiment] += 1
        self.predictions += 1
        self.top_probability_sum += probability

    def merge(self, other: TextProfile) -> None:
        self.reviews += other.reviews
        self.length_counts = [a + b for a, b in zip(self.length_counts, other.length_counts, strict=True)]
        self.truncated += other.truncated
        self.tokens += other.tokens
        self.unseen_tokens += other.unseen_tokens
        for name, count in other.predicted_counts.items():
            self.predicted_counts[name] = self.predicted_counts.get(name, 0) + count
        self.predictions += other.predictions
        self.top_probability_sum += other.top_probability_sum

    def scaled(self, factor: float) -> TextProfile:
        """Every count times ``factor``, rounded (so that a profile stays counts): see :func:`class_mixture`."""
        return TextProfile(
            reviews=round(self.reviews * factor),
            length_counts=[round(count * factor) for count in self.length_counts],
            truncated=round(self.truncated * factor),
            tokens=round(self.tokens * factor),
            unseen_tokens=round(self.unseen_tokens * factor),
            predicted_counts={name: round(count * factor) for name, count in self.predicted_counts.items()},
            predictions=round(self.predictions * factor),
            top_probability_sum=self.top_probability_sum * factor,
        )

    # --- shares (None when there is nothing to divide by: "no value", never a made-up 0)
    @property
    def truncated_share(self) -> float | None:
        return self.truncated / self.reviews if self.reviews else None

    @property
    def unseen_token_share(self) -> float | None:
        return self.unseen_tokens / self.tokens if self.tokens else None

    @property
    def mean_top_probability(self) -> float | None:
        return self.top_probability_sum / self.predictions if self.predictions else None

    def summary(self) -> dict[str, Any]:
        """The profile as the report shows it: counts and the shares made of them."""
        return {
            **asdict(self),
            "length_bins": length_bin_labels(),
            "length_shares": shares(self.length_counts),
            "predicted_shares": dict(
                zip(SENTIMENT_NAMES, shares(self.predicted_counts.values()), strict=True)
            ),
            "truncated_share": self.truncated_share,
            "unseen_token_share": self.unseen_token_share,
            "mean_top_probability": self.mean_top_probability,
        }

    @classmethod
    def from_summary(cls, summary: dict[str, Any], where: str) -> TextProfile:
        try:
            profile = cls(
                reviews=int(summary["reviews"]),
                length_counts=[int(c) for c in summary["length_counts"]],
                truncated=int(summary["truncated"]),
                tokens=int(summary["tokens"]),
                unseen_tokens=int(summary["unseen_tokens"]),
                predicted_counts={name: int(summary["predicted_counts"][name]) for name in SENTIMENT_NAMES},
                predictions=int(summary["predictions"]),
                top_probability_sum=float(summary["top_probability_sum"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BaselineError(f"{where}: the profile lacks or mistypes {error}") from None
        if len(profile.length_counts) != len(LENGTH_BIN_EDGES):
            raise BaselineError(
                f"{where}: {len(profile.length_counts)} length bins, this code counts {len(LENGTH_BIN_EDGES)}"
            )
        return profile


def class_mixture(
    by_class: dict[str, TextProfile], class_shares: dict[str, float]
) -> tuple[TextProfile, dict[str, float]]:
    """One profile of the reviews of ``by_class`` (profiles per true class) weighted so that the classes
    weigh what ``class_shares`` says, and each class's weight (reviews the mixture counts per review held).

    The test split is balanced when the training data was (``BalanceDataset``), but the endpoint's traffic
    comes in the data's own proportions (on the sample, about 77% positive): profiled as it is, the
    baseline predicts a third of each class and realistic traffic reads as drift. Within a class the test
    split is a random draw of that class (the split is stratified), so weighting each class's profile by its
    share of the data gives what traffic drawn from the data looks like, lengths and predictions alike. The
    counts stay on the test split's scale (its review count), so the statistics' smoothing is unchanged.
    """
    total = sum(profile.reviews for profile in by_class.values())
    wanted = {name: float(class_shares.get(name, 0.0)) for name in by_class}
    norm = sum(wanted.values())
    missing = [name for name, share in wanted.items() if share > 0 and by_class[name].reviews == 0]
    if norm <= 0 or missing:
        raise BaselineError(
            f"cannot weight the test split to the class shares {class_shares}: "
            + (f"no test review of {', '.join(missing)}" if missing else "the shares add up to 0")
        )
    weights = {
        name: (wanted[name] / norm) * total / profile.reviews if profile.reviews else 0.0
        for name, profile in by_class.items()
    }
    mixture = TextProfile()
    for name, profile in by_class.items():
        mixture.merge(profile.scaled(weights[name]))
    mixture.reviews = total
    return mixture, weights


def shares(counts: Iterable[float]) -> list[float]:
    values = list(counts)
    total = sum(values)
    return [value / total if total else 0.0 for value in values]


def population_stability_index(expected: Sequence[int], actual: Sequence[int]) -> float:
    """PSI = sum((a - e) * ln(a / e)) over the bins' shares, each count plus :data:`PSI_PSEUDO_COUNT`.

    Rules of thumb: below 0.1 no shift, 0.1-0.25 a moderate one, above 0.25 a large one.
    """
    e_shares = shares([count + PSI_PSEUDO_COUNT for count in expected])
    a_shares = shares([count + PSI_PSEUDO_COUNT for count in actual])
    return float(sum((a - e) * math.log(a / e) for e, a in zip(e_shares, a_shares, strict=True)))


def jensen_shannon_distance(expected: Sequence[int], actual: Sequence[int]) -> float:
    """The square root of the Jensen-Shannon divergence, base 2: 0 for the same shares, 1 for disjoint ones."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(shares(expected), shares(actual), base=2))


# ------------------------------------------------------------------------------------------------ tokens
class TokenCounter:
    """Lengths and unseen tokens of texts, with the model's tokenizer (``tokenizers``, no truncation).

    The evaluation step and the monitoring job both count through this class, from the same
    ``tokenizer.json``, so a length means the same number of tokens on both sides.
    """

    def __init__(self, tokenizer: Any, known_token_ids: Iterable[int], max_seq_length: int) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.known = frozenset(int(token) for token in known_token_ids)
        self.max_seq_length = max_seq_length

    @classmethod
    def load(cls, folder: Path, known_token_ids: Iterable[int], max_seq_length: int) -> TokenCounter:
        from tokenizers import Tokenizer

        path = folder / TOKENIZER_FILE
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # the Rust side raises a plain Exception for a missing or bad file
            raise BaselineError(f"{path}: cannot load the tokenizer: {error}") from None
        return cls(tokenizer, known_token_ids, max_seq_length)

    def count(self, texts: Sequence[str], profile: TextProfile) -> None:
        """Add each text's length and unseen tokens to ``profile`` (one batched, multi-threaded call)."""
        # encode_batch_fast: no character offsets, which nothing here reads (what the processing step uses too)
        for encoding in self.tokenizer.encode_batch_fast(list(texts)):
            content = [
                token
                for token, special in zip(encoding.ids, encoding.special_tokens_mask, strict=True)
                if not special
            ]
            unseen = sum(1 for token in content if token not in self.known)
            profile.add_review(len(encoding.ids), unseen, len(content), self.max_seq_length)


# ------------------------------------------------------------------------------------------------ baseline
@dataclass
class Baseline:
    """The test split's profile, the true labels' counts, and what the window must be counted with."""

    profile: TextProfile
    label_counts: dict[str, int]
    max_seq_length: int
    known_tokens_source: str
    model: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": BASELINE_SCHEMA,
            "description": "The evaluation step's profile of the test split (each class weighted to its share "
            "of the data when the data check's shares were given), which monitoring compares with",
            "max_seq_length": self.max_seq_length,
            "known_tokens_source": self.known_tokens_source,
            "label_counts": self.label_counts,
            "label_shares": dict(zip(SENTIMENT_NAMES, shares(self.label_counts.values()), strict=True)),
            "profile": self.profile.summary(),
            "model": self.model,
            "files": {"tokenizer": TOKENIZER_FILE, "known_token_ids": KNOWN_TOKENS_FILE},
        }


def write_baseline(
    folder: Path, baseline: Baseline, backend_tokenizer: Any, known_token_ids: Iterable[int]
) -> Path:
    """``baseline.json``, ``tokenizer.json``, ``known_token_ids.json`` and ``code/`` in ``folder``.

    Returns the path of ``baseline.json``.
    """
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    (folder / CODE_FOLDER).mkdir(exist_ok=True)
    for name in CODE_FILES:
        shutil.copyfile(Path(__file__).parent / name, folder / CODE_FOLDER / name)
    backend_tokenizer.save(str(folder / TOKENIZER_FILE))
    (folder / KNOWN_TOKENS_FILE).write_text(json.dumps(sorted({int(t) for t in known_token_ids})), "utf-8")
    path = folder / BASELINE_FILE
    path.write_text(json.dumps(baseline.as_json(), indent=2), encoding="utf-8")
    return path


def read_baseline(folder: Path) -> tuple[Baseline, TokenCounter]:
    """The baseline in ``folder`` and a :class:`TokenCounter` set up as the evaluation step's was."""
    path = folder / BASELINE_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(
            f"no {BASELINE_FILE} in {folder}: the evaluation step writes it (models evaluated before "
            "monitoring existed have none; retrain to get one)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BaselineError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("schema") != BASELINE_SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise BaselineError(f"{path}: schema {found!r}, expected {BASELINE_SCHEMA!r}")
    try:
        known = json.loads((folder / KNOWN_TOKENS_FILE).read_text(encoding="utf-8"))
        baseline = Baseline(
            profile=TextProfile.from_summary(document["profile"], str(path)),
            label_counts={name: int(document["label_counts"][name]) for name in SENTIMENT_NAMES},
            max_seq_length=int(document["max_seq_length"]),
            known_tokens_source=str(document["known_tokens_source"]),
            model=dict(document.get("model") or {}),
        )
    except FileNotFoundError as error:
        raise BaselineError(f"{folder}: missing {Path(str(error.filename)).name}") from None
    except (KeyError, TypeError, ValueError) as error:
        raise BaselineError(f"{path}: lacks or mistypes {error}") from None
    if baseline.profile.reviews == 0:
        raise BaselineError(f"{path}: the baseline profiles no reviews")
    return baseline, TokenCounter.load(folder, known, baseline.max_seq_length)
