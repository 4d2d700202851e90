"""Labels, duplicates, balancing and the stratified split: each row's decision as one int8.

A kept row's code is its label id (0, 1, 2); a rejected row's is negative, one code per reason in
:data:`REJECT_REASONS` (the order of the checks). The split orders each class's kept rows by a hash of
``(seed, review_id)`` and cuts them by the ratios, so it depends only on the seed and the set of kept rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import features
import numpy as np
import pandas as pd
from reviews_csv import (
    BALANCED_OUT,
    DUPLICATE,
    INVALID_ENCODING,
    INVALID_RATING,
    MISSING_TEXT,
    REJECT_CODES,
    InputError,
)

if TYPE_CHECKING:
    pass


# ------------------------------------------------------------------------------------- labels, ids, split


def row_codes(
    frame: pd.DataFrame, invalid_encoding: np.ndarray | None = None, malformed: np.ndarray | None = None
) -> np.ndarray:
    """Each row's label id (0, 1, 2), or the code of why it cannot be used (another number of fields than
    the header, not UTF-8, no text, rating not 1-5).

    Only these two columns decide (and, first, whether the row has the header's shape and its bytes were
    UTF-8): a review without a title or an age is still a review. A row of the wrong shape has its fields
    in the wrong columns, so it is rejected whatever they hold.
    """
    text_missing = frame[features.TEXT_COLUMN].str.strip().eq("").to_numpy()
    rating = pd.to_numeric(frame[features.RATING_COLUMN].str.strip(), errors="coerce").to_numpy(float)
    with np.errstate(invalid="ignore"):
        valid_rating = np.isin(rating, list(features.SENTIMENT_BY_RATING))  # "5" and "5.0", not "4.5"
    label_by_rating = np.full(6, -1, dtype=np.int8)
    for stars, sentiment in features.SENTIMENT_BY_RATING.items():
        label_by_rating[stars] = features.LABEL_ID_BY_SENTIMENT[sentiment]
    codes = np.where(valid_rating, label_by_rating[np.where(valid_rating, rating, 0).astype(int)], 0)
    codes = np.where(valid_rating, codes, REJECT_CODES[INVALID_RATING])
    codes = np.where(text_missing, REJECT_CODES[MISSING_TEXT], codes)
    if invalid_encoding is not None:
        codes = np.where(invalid_encoding, REJECT_CODES[INVALID_ENCODING], codes)
    if malformed is not None:
        codes = np.where(malformed != 0, malformed, codes)
    return codes.astype(np.int8)


def _mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: a bijection on 64-bit integers that scatters nearby inputs uniformly."""
    x = values.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash_keys(ids: np.ndarray, seed: int, purpose: str) -> np.ndarray:
    """Per-row pseudo-random keys from ``(seed, purpose, review_id)``: distinct ids give distinct keys."""
    salt = int.from_bytes(hashlib.sha1(f"{seed}:{purpose}".encode()).digest()[:8], "big")
    return _mix64(ids.astype(np.uint64) ^ np.uint64(salt))


def split_sizes(count: int, ratios: Sequence[float]) -> list[int]:
    """How many of ``count`` rows go to each split: exact shares, rounded so that they add up to ``count``.

    Largest remainder (ties to the earlier split), then every split with a ratio above 0 gets at least one row
    while there are enough rows, taken from the largest split. With 3 splits: any class of 3 rows or more is in
    all three.
    """
    total = sum(ratios)
    exact = [count * ratio / total for ratio in ratios]  # ratios add up to 1 only within argparse's 1e-6
    sizes = [int(share) for share in exact]
    while sum(sizes) > count:  # float rounding of a share just above an integer
        sizes[sizes.index(max(sizes))] -= 1
    by_remainder = sorted(
        (index for index, ratio in enumerate(ratios) if ratio > 0),
        key=lambda index: sizes[index] - exact[index],
    )
    for index in by_remainder[: count - sum(sizes)]:
        sizes[index] += 1
    for index, ratio in enumerate(ratios):
        if ratio > 0 and sizes[index] == 0:
            largest = max(range(len(sizes)), key=lambda other: sizes[other])
            if sizes[largest] < 2:
                break  # fewer rows than splits: some split stays without this class
            sizes[largest] -= 1
            sizes[index] += 1
    return sizes


def assign_splits(ids: np.ndarray, codes: np.ndarray, seed: int, ratios: Sequence[float]) -> np.ndarray:
    """Split index per row (0 train, 1 validation, 2 test), stratified exactly per class of the kept rows.

    Each class's rows are ordered by their key from ``(seed, review_id)`` and cut into :func:`split_sizes`:
    the same rows give the same split in any order. Rows that are not kept get 0 (they are never written).
    Kept ids are distinct (duplicates are rejected first), so are their keys: there are no ties to break.
    """
    splits = np.zeros(ids.size, dtype=np.int8)
    keys = hash_keys(ids, seed, "split")
    for label in features.SENTIMENT_BY_LABEL_ID:
        members = np.flatnonzero(codes == label)
        ordered = members[np.argsort(keys[members], kind="stable")]
        sizes = split_sizes(ordered.size, ratios)
        splits[ordered] = np.repeat(np.arange(len(sizes), dtype=np.int8), sizes)
    return splits


def check_test_size(codes: np.ndarray, splits: np.ndarray, minimum: int) -> None:
    """Refuse a test split with fewer than ``minimum`` reviews of some class: the gate would mean little.

    Runs before anything is written. The message names every class that is short, with its counts.
    """
    test = features.SPLITS.index("test")
    short = []
    for label in features.SENTIMENT_BY_LABEL_ID:
        in_test = int(np.count_nonzero((codes == label) & (splits == test)))
        if in_test < minimum:
            kept = int(np.count_nonzero(codes == label))
            short.append(f"{sentiment_name(label)!r} has {in_test} test reviews (of {kept} kept)")
    if short:
        raise InputError(
            f"the test split is too small for the quality gate: {'; '.join(short)}, fewer than "
            f"--min-test-reviews-per-class {minimum}. "
            "Add reviews of that class, raise --test-split-percentage, turn off --balance-dataset if it drops "
            "too many, or lower --min-test-reviews-per-class"
        )


def mark_duplicates(ids: np.ndarray, codes: np.ndarray) -> None:
    """Reject (in place) every kept row whose raw values equal an earlier kept row's: it would count twice."""
    kept = np.flatnonzero(codes >= 0)
    _, first = np.unique(ids[kept], return_index=True)
    duplicate = np.ones(kept.size, dtype=bool)
    duplicate[first] = False
    codes[kept[duplicate]] = REJECT_CODES[DUPLICATE]


def human_labels(frame: pd.DataFrame) -> np.ndarray:
    """Per row: whether its label is a person's (a non-blank ``Label Source``: ``pipelines review export``,
    A2I, Ground Truth). A file without the column holds none."""
    if features.LABEL_SOURCE_COLUMN not in frame:
        return np.zeros(len(frame), dtype=bool)
    return frame[features.LABEL_SOURCE_COLUMN].str.strip().ne("").to_numpy(dtype=bool)


@dataclass(frozen=True)
class Balancing:
    """What balancing did, per class (label id): the kept rows before it, the human labels among them (all
    kept), and the rows it dropped (``balanced_out``, never a human label)."""

    before: dict[int, int]
    human: dict[int, int]
    dropped: dict[int, int]
    target: int

    def describe(self) -> str:
        """One line for the log: per class, before -> kept, what was dropped, and the human labels kept."""
        parts = []
        for label, count in self.before.items():
            part = f"{sentiment_name(label)} {count} -> {count - self.dropped[label]} (dropped {self.dropped[label]}"
            part += f", all {self.human[label]} human labels kept" if self.human[label] else ""
            parts.append(part + ")")
        over = [sentiment_name(label) for label in self.before if self.human[label] > self.target]
        note = (
            f"; {', '.join(over)}: more human labels than {self.target}, all kept (balancing never drops a "
            "person's label)"
            if over
            else ""
        )
        return f"balancing to {self.target} per class: " + "; ".join(parts) + note

    def as_dict(self) -> dict[str, Any]:
        def named(counts: dict[int, int]) -> dict[str, int]:
            return {sentiment_name(label): count for label, count in counts.items()}

        return {
            "target": self.target,
            "before": named(self.before),
            "human_labels": named(self.human),
            "dropped": named(self.dropped),
        }


def balance(ids: np.ndarray, codes: np.ndarray, seed: int, human: np.ndarray | None = None) -> Balancing:
    """Downsample (in place) every class to the smallest present class's count, human labels first.

    A human label (``human``: :func:`human_labels` per row) is the input's most expensive row and the one that
    corrects the model where it was unsure, so balancing never drops one: each class keeps all of its human
    labels, then fills up to the target with its other rows. A class with more human labels than the target
    keeps them all and ends above the others (:meth:`Balancing.describe` says so). Which other rows stay is
    decided by a per-row hash key, not by position, so it does not depend on file order. Like the course's
    ``groupby('sentiment')`` sampling, a class with no rows at all does not count.
    """
    human = np.zeros(ids.size, dtype=bool) if human is None else human
    labels = list(features.SENTIMENT_BY_LABEL_ID)
    counts = {label: int(np.count_nonzero(codes == label)) for label in labels}
    humans = {label: int(np.count_nonzero((codes == label) & human)) for label in labels}
    dropped = dict.fromkeys(labels, 0)
    present = [count for count in counts.values() if count > 0]
    if not present:
        return Balancing(counts, humans, dropped, 0)
    target = min(present)
    keys = hash_keys(ids, seed, "balance")
    for label in labels:
        room = max(target - humans[label], 0)  # places left for the class's rows that are not human labels
        others = np.flatnonzero((codes == label) & ~human)
        if others.size <= room:
            continue
        if room == 0:
            out = others
        else:
            # Keys are distinct (distinct ids after deduplication), so exactly `room` keys are <= the cut.
            cut = np.partition(keys[others], room - 1)[room - 1]
            out = others[keys[others] > cut]
        codes[out] = REJECT_CODES[BALANCED_OUT]
        dropped[label] = int(out.size)
    return Balancing(counts, humans, dropped, target)


def sentiment_name(label_id: int) -> str:
    return features.SENTIMENT_NAMES[features.SENTIMENT_BY_LABEL_ID[label_id]]
