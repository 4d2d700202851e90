"""The tokenized splits as the model sees them: read, checked, weighed, batched. Shared by ``train.py`` and ``evaluate.py``.

A library of the steps folder, not a step: each script that imports it ships it (``model_build/code_upload.py``
follows the imports), so editing the training recipe in ``train.py`` leaves the evaluation step's code, and its
cache, alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import features

logger = logging.getLogger("train")

NUM_LABELS = len(features.SENTIMENT_BY_LABEL_ID)
REQUIRED_COLUMNS = ("review_id", "label_id", "input_ids")
SENTIMENT_COLUMN = "sentiment"
INDEX_KEY = "review_index"
"""The key under which a batch says which reviews (dataset indices) it holds; not a model input."""


class TrainingInputError(Exception):
    """Bad input found before training starts: the message names what is wrong and where."""


@dataclass
class Split:
    """One split as the model sees it: token ids (unpadded) and class indices, with the review ids."""

    name: str
    review_ids: list[str]
    input_ids: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


def read_split(folder: Path, name: str, max_seq_length: int) -> Split:
    """Read every ``*.parquet`` under ``folder``; refuse an empty/missing channel or a label outside 0-2."""
    import pyarrow.parquet as pq

    if not folder.is_dir():
        raise TrainingInputError(f"the {name} data folder {folder} does not exist")
    files = sorted(folder.rglob("*.parquet"))
    if not files:
        raise TrainingInputError(f"the {name} data folder {folder} has no *.parquet files")
    split = Split(name, [], [], [])
    truncated = 0
    for file in files:
        table = pq.read_table(file)
        missing = [column for column in REQUIRED_COLUMNS if column not in table.column_names]
        if missing:
            raise TrainingInputError(
                f"{file} lacks the column(s) {', '.join(missing)}; it has {', '.join(table.column_names)}"
            )
        columns = table.select(list(REQUIRED_COLUMNS)).to_pydict()
        sentiments = (
            table.column(SENTIMENT_COLUMN).to_pylist() if SENTIMENT_COLUMN in table.column_names else None
        )
        for row, (review_id, label, ids) in enumerate(
            zip(columns["review_id"], columns["label_id"], columns["input_ids"], strict=True)
        ):
            where = f"{file} row {row} (review_id {review_id})"
            if label is None or not 0 <= label < NUM_LABELS:
                raise TrainingInputError(f"{where}: label_id {label!r} is outside 0-{NUM_LABELS - 1}")
            if sentiments is not None and sentiments[row] != features.SENTIMENT_BY_LABEL_ID[label]:
                raise TrainingInputError(
                    f"{where}: label_id {label} means sentiment {features.SENTIMENT_BY_LABEL_ID[label]}, "
                    f"but the sentiment column says {sentiments[row]!r}"
                )
            if not ids:
                raise TrainingInputError(f"{where}: input_ids is empty")
            if len(ids) > max_seq_length:
                # Keep the closing special token (</s> or [SEP]) the tokenizer put last.
                ids = [*ids[: max_seq_length - 1], ids[-1]]
                truncated += 1
            split.review_ids.append(str(review_id))
            split.input_ids.append([int(token) for token in ids])
            split.labels.append(int(label))
    if not split.labels:
        raise TrainingInputError(f"the {name} data in {folder} has no rows ({len(files)} Parquet file(s))")
    if truncated:
        logger.info(
            "%s: truncated %d of %d reviews to %d tokens", name, truncated, len(split), max_seq_length
        )
    counts = {features.SENTIMENT_BY_LABEL_ID[label]: split.labels.count(label) for label in range(NUM_LABELS)}
    logger.info("%s: %d reviews from %d file(s), by sentiment %s", name, len(split), len(files), counts)
    return split


def check_token_ids(splits: Sequence[Split], vocab_size: int, pretrained_model: str) -> None:
    """Ids beyond the vocabulary mean the data was tokenized for another model: say so before training."""
    for split in splits:
        largest = max(max(ids) for ids in split.input_ids)
        if largest >= vocab_size:
            raise TrainingInputError(
                f"the {split.name} data has token id {largest}, but {pretrained_model!r} has a vocabulary of "
                f"{vocab_size}: was it processed with another --pretrained-model?"
            )


def class_weights(labels: Sequence[int], num_labels: int = NUM_LABELS) -> list[float]:
    """Inverse-frequency weight per class: ``n / (classes present * count)``; 1.0 for an absent class.

    The weights sum the per-class loss shares to the same total: every class then counts as much as the
    others whatever its size. A class absent from the train split never is a target, so its weight is unused;
    1.0 keeps the logged numbers readable.
    """
    counts = [0] * num_labels
    for label in labels:
        counts[label] += 1
    present = sum(1 for count in counts if count)
    total = sum(counts)
    return [total / (present * count) if count else 1.0 for count in counts]


def describe_weights(weights: Sequence[float] | None) -> str:
    """``negative 2.3333, neutral 7.0000, positive 0.4762`` (by sentiment name), or why there are none."""
    if weights is None:
        return "off (plain cross-entropy)"
    return ", ".join(
        f"{features.SENTIMENT_NAMES[features.SENTIMENT_BY_LABEL_ID[label]]} {weight:.4f}"
        for label, weight in enumerate(weights)
    )


class SplitDataset:
    """Map-style dataset over a :class:`Split`; each item carries its index, so a batch says which reviews it holds."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "input_ids": self.split.input_ids[index],
            "labels": self.split.labels[index],
            INDEX_KEY: index,
        }


def make_collator(tokenizer: Any, max_seq_length: int, pad_to_max_length: bool = False) -> Any:
    """``DataCollatorWithPadding``: pads each batch to its longest row (dynamic padding), or, with
    ``pad_to_max_length``, every row to ``max_seq_length`` (the benchmark's baseline). It builds the attention
    mask, so pads are never attended to, and passes ``review_index`` and ``labels`` through as tensors."""
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(
        tokenizer,
        padding="max_length" if pad_to_max_length else "longest",
        max_length=max_seq_length if pad_to_max_length else None,
    )


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch without what the model does not take: the labels and the reviews' indices."""
    return {key: value for key, value in batch.items() if key not in ("labels", INDEX_KEY)}
