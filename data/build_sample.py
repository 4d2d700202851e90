"""Rebuild ``data/reviews_sample.csv``, the small review file the local pipeline and the tests read.

The reviews are composed from the fragments in ``data/review_phrases.py`` (the benchmark generator uses the
same ones), with a fixed seed, so this script always writes the same file. On top of what the generator
writes, the sample plants the edge cases the processing step must handle: a few reviews without text and a
few rows whose rating is empty (rejected by processing), and it checks that it holds enough long and
non-ASCII reviews.

Usage: ``python data/build_sample.py [--rows 2400] [--seed 7] [--out data/reviews_sample.csv]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as `python data/build_sample.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.synthetic_reviews import compose_reviews
from model_build.steps.features import RATING_COLUMN, TEXT_COLUMN

DEFAULT_OUT = Path(__file__).resolve().parent / "reviews_sample.csv"
EMPTY_TEXT_ROWS = 5
EMPTY_RATING_ROWS = 3
LONG_WORDS = 120  # about 150 RoBERTa tokens: longer than the default max length of 128
MIN_LONG_ROWS = 20
LONG_SHARE = 0.06  # a little above the generator's 5%, so that even a 650-row draw is sure to hold 20


def build_sample(rows: int, seed: int) -> pd.DataFrame:
    """``rows`` distinct reviews in the Kaggle layout, with the planted edge cases."""
    rng = np.random.default_rng(seed)
    frame = compose_reviews(rng, int(rows * 1.2), long_share=LONG_SHARE, empty_text_share=0.0)
    frame = frame.drop_duplicates(subset=TEXT_COLUMN).head(rows).reset_index(drop=True)
    if len(frame) < rows:
        raise RuntimeError(f"only {len(frame)} distinct reviews were composed, {rows} wanted: raise the draw")

    planted = rng.choice(rows, EMPTY_TEXT_ROWS + EMPTY_RATING_ROWS, replace=False)
    frame.loc[planted[:EMPTY_TEXT_ROWS], TEXT_COLUMN] = None
    frame[RATING_COLUMN] = frame[RATING_COLUMN].astype("Int64")
    frame.loc[planted[EMPTY_TEXT_ROWS:], RATING_COLUMN] = pd.NA

    words = frame[TEXT_COLUMN].fillna("").str.split().str.len()
    long_rows = int((words >= LONG_WORDS).sum())
    if long_rows < MIN_LONG_ROWS:
        raise RuntimeError(
            f"only {long_rows} reviews of {LONG_WORDS}+ words, {MIN_LONG_ROWS} wanted: change --seed"
        )
    return frame


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        default=2400,
        help="reviews in the sample: enough that a balanced split leaves ~35 test reviews",
    )
    parser.add_argument("--seed", type=int, default=7, help="the same seed writes the same file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the CSV")
    args = parser.parse_args(argv)
    frame = build_sample(args.rows, args.seed)
    frame.to_csv(
        args.out, lineterminator="\n"
    )  # the unnamed first column is the index, as in the Kaggle file
    counts = frame[RATING_COLUMN].value_counts(dropna=False).sort_index()
    ratings = ", ".join(
        f"{'empty' if pd.isna(rating) else rating}: {count}" for rating, count in counts.items()
    )
    print(f"wrote {len(frame)} reviews to {args.out}; reviews per rating: {ratings}")


if __name__ == "__main__":
    main()
