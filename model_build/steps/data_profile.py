"""Counting the raw reviews for the data check: per column, per facet, and the pre-training bias metrics.

SageMaker Clarify's class imbalance (CI) and difference in proportions of labels (DPL), as the course computes
them, over the counts a :class:`Tally` keeps while the data check reads the input in chunks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import features
import numpy as np
import pandas as pd
from csv_rows import describe
from reviews_csv import (
    Chunk,
    Source,
    is_valid_utf8,
    read_chunks,
    row_ids,
)
from tqdm import tqdm

MISSING_FACET_VALUE = "(missing)"
LISTED_MALFORMED = 20
"""Rows with the wrong number of fields named (file and line) in the report; all are counted."""

INTEGER_COLUMNS: tuple[str, ...] = ("Clothing ID", "Age", "Positive Feedback Count")
"""Typed columns of the raw schema besides ``Rating`` (1-5) and ``Recommended IND`` (0/1)."""
FLAG_COLUMN = "Recommended IND"
VALID_RATINGS = frozenset(features.SENTIMENT_BY_RATING)


# ------------------------------------------------------------------------------------------- the metrics
def class_imbalance(n_a: int, n_d: int) -> float | None:
    """Clarify's CI = (n_a - n_d) / (n_a + n_d); None when neither facet has a row."""
    total = n_a + n_d
    return (n_a - n_d) / total if total else None


def difference_in_proportions_of_labels(n_a: int, positive_a: int, n_d: int, positive_d: int) -> float | None:
    """Clarify's DPL = q_a - q_d with q = n(1) / n; None when a facet has no row (its q is undefined)."""
    if n_a == 0 or n_d == 0:
        return None
    return positive_a / n_a - positive_d / n_d


def facet_bias(counts: dict[str, int], positives: dict[str, int]) -> dict[str, Any]:
    """CI and DPL of every value of one facet against the rest (one-versus-rest), from per-value counts."""
    total, total_positive = sum(counts.values()), sum(positives.values())
    values: dict[str, Any] = {}
    for value in sorted(counts, key=lambda name: (-counts[name], name)):
        n_d, positive_d = counts[value], positives.get(value, 0)
        n_a, positive_a = total - n_d, total_positive - positive_d
        values[value] = {
            "count": n_d,
            "positive_count": positive_d,
            "positive_share": positive_d / n_d if n_d else None,
            "CI": class_imbalance(n_a, n_d),
            "DPL": difference_in_proportions_of_labels(n_a, positive_a, n_d, positive_d),
        }
    return {
        "values": values,
        "max_abs_CI": max_abs(entry["CI"] for entry in values.values()),
        "max_abs_DPL": max_abs(entry["DPL"] for entry in values.values()),
    }


def max_abs(numbers: Iterable[float | None]) -> float | None:
    present = [abs(number) for number in numbers if number is not None]
    return max(present) if present else None


# ------------------------------------------------------------------------------------------- counting
@dataclass
class Tally:
    """What the chunks add up to; every count is over data rows (the header excluded)."""

    facets: list[str]
    positive_ratings: list[int]
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    files: dict[str, list[str]] = field(default_factory=dict)
    """File -> its header: a file without a required column is named in the schema check."""
    missing: Counter[str] = field(default_factory=Counter)
    unparseable: Counter[str] = field(default_factory=Counter)
    present: Counter[str] = field(default_factory=Counter)
    """Non-empty values per typed column: the base of its unparseable share."""
    empty_text: int = 0
    human_labels: int = 0
    """Rows with a ``Label Source`` (labeled by people)."""
    duplicates: int = 0
    ratings: Counter[int] = field(default_factory=Counter)
    rows_without_label: int = 0
    facet_counts: dict[str, Counter[str]] = field(default_factory=dict)
    facet_positives: dict[str, Counter[str]] = field(default_factory=dict)
    facet_sentiments: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    """Facet -> (value, sentiment name) -> rows: the picture's stacked bars."""
    seen: set[int] = field(default_factory=set)
    malformed: int = 0
    """Rows with another number of fields than their file's header: left out of every other count (their
    fields sit in the wrong columns); processing rejects them with their line."""
    malformed_lines: list[str] = field(default_factory=list)
    """``file: line N: the row has X fields, the header Y`` for the first :data:`LISTED_MALFORMED` of them."""

    def add_malformed(self, source: str, chunk: Chunk) -> pd.DataFrame:
        """Count the chunk's rows of the wrong shape; the rows of the right one, to :meth:`add`."""
        if chunk.malformed is None:
            return chunk.frame
        bad = chunk.malformed != 0
        self.malformed += int(bad.sum())
        width = chunk.frame.shape[1]
        room = LISTED_MALFORMED - len(self.malformed_lines)
        self.malformed_lines += [
            f"{source}: {describe(int(count), width, int(line))}"
            for line, count in zip(chunk.lines[bad][:room], chunk.field_counts[bad][:room], strict=True)
        ]
        return chunk.frame[~bad].reset_index(drop=True)

    def add(self, frame: pd.DataFrame) -> None:
        self.rows += len(frame)
        for name in frame.columns:
            if name not in self.columns:
                self.columns.append(name)
            self.missing[name] += int((frame[name].str.len() == 0).sum())
        for name, kind in typed_columns(frame.columns):
            values = frame[name]
            present = values.str.len() > 0
            self.present[name] += int(present.sum())
            self.unparseable[name] += int((present & ~valid_values(values, kind)).sum())
        if features.LABEL_SOURCE_COLUMN in frame:
            self.human_labels += int((frame[features.LABEL_SOURCE_COLUMN].str.strip().str.len() > 0).sum())
        if features.TEXT_COLUMN in frame:
            self.empty_text += int((frame[features.TEXT_COLUMN].str.strip().str.len() == 0).sum())
        for row_id in row_ids(frame).tolist():
            if row_id in self.seen:
                self.duplicates += 1
            else:
                self.seen.add(row_id)
        if features.RATING_COLUMN not in frame:
            self.rows_without_label += len(frame)
            return
        ratings = pd.to_numeric(frame[features.RATING_COLUMN].str.strip(), errors="coerce")
        labelled = ratings.isin(sorted(VALID_RATINGS)).to_numpy()
        self.rows_without_label += int((~labelled).sum())
        labelled_ratings = ratings[labelled].astype(int)
        self.ratings.update(labelled_ratings.tolist())
        positive = labelled_ratings.isin(self.positive_ratings).to_numpy()
        sentiment_names = [
            features.SENTIMENT_NAMES[features.SENTIMENT_BY_RATING[rating]] for rating in labelled_ratings
        ]
        for facet in self.facets:
            if facet not in frame:
                continue
            values = frame.loc[labelled, facet].str.strip().replace("", MISSING_FACET_VALUE)
            self.facet_counts.setdefault(facet, Counter()).update(values.tolist())
            self.facet_positives.setdefault(facet, Counter()).update(values[positive].tolist())
            self.facet_sentiments.setdefault(facet, Counter()).update(
                zip(values.tolist(), sentiment_names, strict=True)
            )


def typed_columns(columns: Iterable[str]) -> list[tuple[str, str]]:
    kinds = {features.RATING_COLUMN: "rating", FLAG_COLUMN: "flag"} | dict.fromkeys(
        INTEGER_COLUMNS, "integer"
    )
    return [(name, kinds[name]) for name in columns if name in kinds]


def valid_values(values: pd.Series, kind: str) -> np.ndarray:
    """Whether each (non-empty) value parses as its column's type: an integer, a rating 1-5, a 0/1 flag."""
    numbers = pd.to_numeric(values.str.strip(), errors="coerce")
    whole = numbers.notna() & (numbers == numbers.round())
    if kind == "rating":
        whole &= numbers.isin(sorted(VALID_RATINGS))
    elif kind == "flag":
        whole &= numbers.isin([0, 1])
    return whole.to_numpy()


def tally(
    sources: Sequence[Source], facets: list[str], positive_ratings: list[int], chunk_size: int
) -> Tally:
    counts = Tally(facets, positive_ratings)
    with tqdm(desc="checking rows", unit=" rows", mininterval=2.0) as progress:
        for source in sources:
            valid_utf8 = is_valid_utf8(source)
            header: list[str] | None = None
            for chunk in read_chunks(source, chunk_size, valid_utf8):
                header = header or list(chunk.frame.columns)
                counts.add(counts.add_malformed(source.relative, chunk))
                progress.update(len(chunk))
            counts.files[source.relative] = header or []
    return counts
