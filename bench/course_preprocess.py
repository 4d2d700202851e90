"""The course's processing script, as the baseline of ``bench/processing_step.py``: read, label, tokenize, write.

"Practical Data Science on AWS" prepares the reviews with ``preprocess-scikit-text-to-bert-feature-store.py``:
per input file, ``pd.read_csv``, drop rows without text or rating, ``to_sentiment`` per row, optionally
balance with ``groupby('sentiment').sample``, ``convert_to_bert_input_ids`` per row through
``encode_plus(..., padding='max_length', return_tensors='pt')``, ``train_test_split`` twice (stratified), and
write each split as TSV. Its ``Pool`` over files gives one file no parallelism. This is that script's work,
kept whole (Feature Store ingestion left out on both sides of the comparison), with ``encode_plus`` spelled as
transformers 5 calls it.

``python bench/course_preprocess.py INPUT_DIR OUTPUT_DIR MODEL_DIR [MAX_SEQ_LENGTH]``; prints the rows it kept.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def convert_to_bert_input_ids(tokenizer: Any, review: str, max_seq_length: int) -> list[int]:
    """The course's function, with ``encode_plus(...)`` spelled as transformers 5 calls it (one review, padded
    to ``max_seq_length``, as tensors); ``bench/tokenization.py`` times it too."""
    encode_plus = tokenizer(
        review,
        add_special_tokens=True,
        max_length=max_seq_length,
        return_token_type_ids=False,
        padding="max_length",
        return_attention_mask=True,
        return_tensors="pt",
        truncation=True,
    )
    return encode_plus["input_ids"].flatten().tolist()


def to_sentiment(star_rating: int) -> int:
    if star_rating in {1, 2}:
        return -1
    if star_rating == 3:
        return 0
    return 1


def main(argv: list[str]) -> int:
    import pandas as pd
    from sklearn.model_selection import train_test_split
    from transformers import AutoTokenizer

    input_dir, output_dir, model_dir = (Path(value) for value in argv[:3])
    max_seq_length = int(argv[3]) if len(argv) > 3 else 128
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    kept = 0
    for file in sorted(input_dir.glob("*.csv")):
        df = pd.read_csv(file, index_col=0)
        df = df[["Review Text", "Rating"]].dropna()
        df = df.rename(columns={"Review Text": "review_body", "Rating": "star_rating"})
        df = df[df["review_body"].str.strip() != ""]
        df["sentiment"] = df["star_rating"].apply(lambda rating: to_sentiment(int(rating)))
        df["input_ids"] = df["review_body"].apply(
            lambda review: convert_to_bert_input_ids(tokenizer, review, max_seq_length)
        )
        df_train, df_holdout = train_test_split(df, test_size=0.10, stratify=df["sentiment"], random_state=42)
        df_validation, df_test = train_test_split(
            df_holdout, test_size=0.50, stratify=df_holdout["sentiment"], random_state=42
        )
        for name, frame in (("train", df_train), ("validation", df_validation), ("test", df_test)):
            folder = output_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            frame.to_csv(folder / f"part-{file.stem}.tsv", sep="\t", index=False)
        kept += len(df)
    print(kept)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
