"""The train/validation/test files: their schema, and a chunk's kept rows in it with their tokens.

Training and evaluation read these files (``training_data.py``); processing writes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import features
import numpy as np
import pandas as pd
import pyarrow as pa
from reviews_csv import review_id_strings
from tokenization import Tokenized

SPLIT_SCHEMA = pa.schema(
    [
        ("review_id", pa.string()),
        ("sentiment", pa.int64()),
        ("label_id", pa.int64()),
        ("input_ids", pa.list_(pa.int32())),
        ("attention_mask", pa.list_(pa.int32())),
        ("review_body", pa.string()),
        ("split_type", pa.string()),
    ]
)
"""The train/validation/test files. Sequences are not padded: training pads each batch to its longest.

No wall-clock value: the same input, parameters and seed give the same files byte for byte, so training's
inputs (and its cache key) do not change when the same data is processed again. The event time belongs to
the Feature Store records only."""


@dataclass(frozen=True)
class KeptRows:
    """The kept rows of a chunk, before tokenizing: ids, label ids, texts and split indices."""

    ids: np.ndarray
    labels: np.ndarray
    texts: list[str]
    splits: np.ndarray


def kept_rows(chunk: pd.DataFrame, ids: np.ndarray, codes: np.ndarray, splits: np.ndarray) -> KeptRows:
    kept = np.flatnonzero(codes >= 0)
    texts = chunk[features.TEXT_COLUMN].to_numpy()[kept].tolist()
    return KeptRows(ids[kept], codes[kept].astype(np.int64), texts, splits[kept])


SENTIMENT_BY_LABEL = np.array([features.SENTIMENT_BY_LABEL_ID[label] for label in range(3)], dtype=np.int64)


def kept_table(kept: KeptRows, tokens: Tokenized) -> pa.Table:
    """The kept rows of a chunk in the split files' schema, with their tokens."""
    return pa.Table.from_arrays(
        [
            pa.array(review_id_strings(kept.ids), pa.string()),
            pa.array(SENTIMENT_BY_LABEL[kept.labels]),
            pa.array(kept.labels),
            tokens.lists(),
            tokens.ones(),
            pa.array(kept.texts, pa.string()),
            pa.array(np.array(features.SPLITS, dtype=object)[kept.splits].tolist(), pa.string()),
        ],
        schema=SPLIT_SCHEMA,
    )
