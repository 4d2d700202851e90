"""Parquet splits shaped like the processing step's output, built straight from the sample CSV.

The training, evaluation and handler tests use these so that they do not depend on the processing step: the
columns and types are the ones ``preprocess.py`` writes (unpadded ``input_ids`` with special tokens).
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import features

SPLIT_SHARES = {"train": 0.8, "validation": 0.1, "test": 0.1}


def sample_reviews(sample_csv: Path, limit: int | None = None) -> list[tuple[str, int]]:
    """(review text, sentiment) of the sample rows that have both, in file order."""
    reviews = []
    with sample_csv.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text, rating = row[features.TEXT_COLUMN], row[features.RATING_COLUMN]
            if text and rating:
                reviews.append((text, features.SENTIMENT_BY_RATING[int(float(rating))]))
    return reviews[:limit]


def write_split(
    folder: Path, reviews: list[tuple[str, int]], tokenizer, max_seq_length: int, split: str
) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    texts = [text for text, _ in reviews]
    encoded = tokenizer(texts, truncation=True, max_length=max_seq_length)["input_ids"]
    table = pa.table(
        {
            "review_id": [hashlib.sha256(text.encode()).hexdigest()[:16] for text in texts],
            "sentiment": pa.array([sentiment for _, sentiment in reviews], pa.int64()),
            "label_id": pa.array(
                [features.LABEL_ID_BY_SENTIMENT[sentiment] for _, sentiment in reviews], pa.int64()
            ),
            "input_ids": pa.array(encoded, pa.list_(pa.int32())),
            "attention_mask": pa.array([[1] * len(ids) for ids in encoded], pa.list_(pa.int8())),
            "review_body": texts,
            "date": ["2024-01-01T00:00:00Z"] * len(texts),
            "split_type": [split] * len(texts),
        }
    )
    path = folder / f"part-{split}.parquet"
    pq.write_table(table, path)
    return path


def write_splits(
    root: Path, sample_csv: Path, model_dir: Path, limit: int | None = None, max_seq_length: int = 128
) -> dict[str, Path]:
    """Write ``root/{train,validation,test}/part-*.parquet`` tokenized with the model in ``model_dir``."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    reviews = sample_reviews(sample_csv, limit)
    folders, start = {}, 0
    for index, (split, share) in enumerate(SPLIT_SHARES.items()):
        end = len(reviews) if index == len(SPLIT_SHARES) - 1 else start + round(share * len(reviews))
        folders[split] = root / split
        write_split(folders[split], reviews[start:end], tokenizer, max_seq_length, split)
        start = end
    return folders


def labelled_model(pretrained_dir: Path, folder: Path, max_seq_length: int = 128) -> Path:
    """A copy of ``pretrained_dir`` saved the way training saves a model: the label map and max length set.

    For tests of what reads a trained model (evaluation, the handler) without training one first.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    id2label = {label: str(sentiment) for label, sentiment in features.SENTIMENT_BY_LABEL_ID.items()}
    model = AutoModelForSequenceClassification.from_pretrained(
        pretrained_dir,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    tokenizer = AutoTokenizer.from_pretrained(pretrained_dir)
    tokenizer.model_max_length = max_seq_length
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
