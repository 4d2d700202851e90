"""Write large synthetic review files in the schema of the Women's E-Commerce Clothing Reviews CSV.

The benchmarks need inputs far bigger than the committed sample, with the same columns, the same rating skew
and the same spread of review lengths (including the share of reviews longer than 128 tokens). Reviews are
composed from the hand-written fragments in ``data/review_phrases.py``, which also build the sample
(``data/build_sample.py``), so both read alike.

Usage::

    python data/synthetic_reviews.py --rows 1000000 --files 8 --out /tmp/reviews [--seed 0] [--gzip]

Files are written chunk by chunk, so memory stays flat whatever ``--rows`` is. The first (unnamed) column is
the row number, unique across all files of one run, like the pandas index of the Kaggle file.
"""

from __future__ import annotations

import argparse
import gzip as gzip_module
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
from tqdm import tqdm

if __package__ in (None, ""):  # run as `python data/synthetic_reviews.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data import review_phrases as phrases
from model_build.steps.features import RATING_COLUMN, RAW_COLUMNS, TEXT_COLUMN

RATINGS = np.array([1, 2, 3, 4, 5])
RATING_SHARES = np.array([0.04, 0.07, 0.12, 0.22, 0.55])
RECOMMENDED_SHARE_BY_RATING = np.array([0.0, 0.01, 0.07, 0.42, 0.96, 0.995])  # indexed by rating
SENTIMENTS = ("negative", "neutral", "positive")  # index 0, 1, 2: rating 1-2, 3, 4-5
SENTIMENT_BY_RATING = np.array([0, 0, 0, 1, 2, 2])  # indexed by rating

# How many body sentences a review has; LONG_SHARE of reviews get 11-16 (about 120-250 words, > 128 tokens).
BODY_SENTENCES = np.array([1, 2, 3, 4, 5, 6])
BODY_SENTENCE_SHARES = np.array([0.10, 0.17, 0.25, 0.23, 0.15, 0.10])
LONG_BODY_SENTENCES = (11, 17)
LONG_SHARE = 0.05
MAX_SLOTS = LONG_BODY_SENTENCES[1] - 1

EMPTY_TITLE_SHARE = 0.15
EMPTY_TEXT_SHARE = 0.01
OPENING_SHARE = 0.68
CONTEXT_SHARE = 0.22
CLOSING_SHARE = 0.65
FOREIGN_SHARE = 0.03
EMOJI_SHARE = 0.03
CURLY_APOSTROPHE_SHARE = 0.2
PARAGRAPH_SHARE = 0.06

CATALOG_SEED = 20_240_613  # the catalog (Clothing ID -> class, garment) is the same in every run
CATALOG_SIZE = 1206  # Clothing IDs 0..1205, as in the Kaggle file
CHUNK_ROWS = 25_000


class _KeepUnknown(dict):
    """Leaves placeholders it has no value for untouched, so they can be filled per review later."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


_PRONOUNS = (
    "It",
    "it",
    "Itis",
    "itis",
    "obj",
    "its",
    "This",
    "this",
    "is_",
    "isnt",
    "was",
    "wasnt",
    "has",
    "doesnt",
)
_SINGULAR = _KeepUnknown(
    zip(_PRONOUNS, ("It", "it", "It's", "it's", "it", "its", "This", "this", "is", "isn't", "was", "wasn't", "has",
                    "doesn't"), strict=True),
    s="s", es="es",
)  # fmt: skip
_PLURAL = _KeepUnknown(
    zip(_PRONOUNS, ("They", "they", "They're", "they're", "them", "their", "These", "these", "are", "aren't", "were",
                    "weren't", "have", "don't"), strict=True),
    s="", es="",
)  # fmt: skip


def _render(sentences: list[str], plural: bool) -> np.ndarray:
    """Settles the grammatical number of every sentence once, so that no review pays for it."""
    words = _PLURAL if plural else _SINGULAR
    rendered = [sentence.replace("{is}", "{is_}").format_map(words) for sentence in sentences]
    return np.array(rendered, dtype=object)


@dataclass(frozen=True)
class _Pools:
    """Fragments flattened into arrays (singular and plural forms), with each group's offset and size."""

    singular: np.ndarray
    plural: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, groups: list[tuple[str, ...]]) -> _Pools:
        flat = [sentence for group in groups for sentence in group]
        sizes = np.array([len(group) for group in groups])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        return cls(_render(flat, plural=False), _render(flat, plural=True), offsets, sizes)

    def pick(self, rng: np.random.Generator, group: np.ndarray, plural: np.ndarray) -> np.ndarray:
        """One fragment per element of ``group`` (any shape), uniformly within its group."""
        index = self.offsets[group] + (rng.random(group.shape) * self.sizes[group]).astype(np.int64)
        if plural.ndim < group.ndim:
            plural = plural.reshape(plural.shape + (1,) * (group.ndim - plural.ndim))
        return np.where(plural, self.plural[index], self.singular[index])


@dataclass(frozen=True)
class _Vocabulary:
    body: _Pools  # group = aspect * len(TONES) + tone
    openings: _Pools  # group = sentiment
    context: _Pools  # one group
    closings: _Pools  # group = recommended * len(SENTIMENTS) + sentiment
    titles: _Pools  # group = sentiment
    foreign: _Pools  # group = sentiment
    emoji: _Pools  # group = sentiment
    aspects: int


@dataclass(frozen=True)
class _Catalog:
    """Clothing IDs with their division, department, class and garment noun, and how often each is reviewed."""

    division: np.ndarray
    department: np.ndarray
    class_name: np.ndarray
    item: np.ndarray
    plural: np.ndarray
    popularity: np.ndarray


@cache
def _vocabulary() -> _Vocabulary:
    aspects = list(phrases.ASPECTS.values())
    return _Vocabulary(
        body=_Pools.of([aspect[tone] for aspect in aspects for tone in phrases.TONES]),
        openings=_Pools.of([phrases.OPENINGS[name] for name in SENTIMENTS]),
        context=_Pools.of([phrases.CONTEXT_SENTENCES]),
        closings=_Pools.of([phrases.CLOSINGS[rec][name] for rec in (0, 1) for name in SENTIMENTS]),
        titles=_Pools.of([phrases.TITLES[name] for name in SENTIMENTS]),
        foreign=_Pools.of([phrases.FOREIGN_PHRASES[name] for name in SENTIMENTS]),
        emoji=_Pools.of([phrases.EMOJI[name] for name in SENTIMENTS]),
        aspects=len(aspects),
    )


@cache
def _catalog() -> _Catalog:
    rng = np.random.default_rng(CATALOG_SEED)
    departments = list(phrases.DEPARTMENT_WEIGHTS)
    department_shares = np.array(list(phrases.DEPARTMENT_WEIGHTS.values()))
    department = rng.choice(departments, CATALOG_SIZE, p=department_shares / department_shares.sum())
    class_name = np.empty(CATALOG_SIZE, dtype=object)
    item = np.empty(CATALOG_SIZE, dtype=object)
    for name in departments:
        rows = np.flatnonzero(department == name)
        classes = list(phrases.GARMENTS[name])
        weights = np.array([phrases.CLASS_WEIGHTS[each] for each in classes])
        class_name[rows] = rng.choice(classes, rows.size, p=weights / weights.sum())
        for each in classes:
            of_class = rows[class_name[rows] == each]
            item[of_class] = rng.choice(phrases.GARMENTS[name][each], of_class.size)
    petite = rng.random(CATALOG_SIZE) < 0.38
    division = np.where(department == "Intimate", "Intimates", np.where(petite, "General Petite", "General"))
    # A few products collect most reviews: a Zipf-like popularity over a shuffled catalog.
    popularity = 1.0 / (rng.permutation(CATALOG_SIZE) + 8.0) ** 1.1
    plural = np.array([noun in phrases.PLURAL_ITEMS for noun in item])
    return _Catalog(
        division.astype(object),
        department.astype(object),
        class_name,
        item,
        plural,
        popularity / popularity.sum(),
    )


def compose_reviews(
    rng: np.random.Generator,
    rows: int,
    *,
    long_share: float = LONG_SHARE,
    empty_title_share: float = EMPTY_TITLE_SHARE,
    empty_text_share: float = EMPTY_TEXT_SHARE,
) -> pd.DataFrame:
    """``rows`` reviews with the Kaggle columns (``RAW_COLUMNS``); the caller sets the index.

    Every random choice is drawn for the whole batch with numpy; the per-review Python work is one join and
    one ``str.format``.
    """
    vocab, catalog = _vocabulary(), _catalog()
    rating = rng.choice(RATINGS, rows, p=RATING_SHARES)
    sentiment = SENTIMENT_BY_RATING[rating]
    recommended = (rng.random(rows) < RECOMMENDED_SHARE_BY_RATING[rating]).astype(np.int64)
    product = rng.choice(CATALOG_SIZE, rows, p=catalog.popularity)
    plural = catalog.plural[product]
    item = catalog.item[product]

    long = rng.random(rows) < long_share
    body_count = np.where(
        long,
        rng.integers(*LONG_BODY_SENTENCES, size=rows),
        rng.choice(BODY_SENTENCES, rows, p=BODY_SENTENCE_SHARES),
    )
    tone_cumulative = np.cumsum([phrases.TONE_PROBABILITIES[r] for r in RATINGS], axis=1)[rating - 1]
    draw = rng.random((rows, MAX_SLOTS))
    tone = (draw > tone_cumulative[:, :1]).astype(np.int64) + (draw > tone_cumulative[:, 1:2])
    aspect_order = np.argsort(rng.random((rows, vocab.aspects)), axis=1)
    aspect = aspect_order[:, np.arange(MAX_SLOTS) % vocab.aspects]
    body = vocab.body.pick(rng, aspect * len(phrases.TONES) + tone, plural).tolist()

    opening = vocab.openings.pick(rng, sentiment, plural)
    has_opening = rng.random(rows) < OPENING_SHARE
    context = vocab.context.pick(rng, np.zeros(rows, dtype=np.int64), plural)
    has_context = rng.random(rows) < CONTEXT_SHARE
    closing = vocab.closings.pick(rng, recommended * len(SENTIMENTS) + sentiment, plural)
    has_closing = rng.random(rows) < CLOSING_SHARE
    foreign = vocab.foreign.pick(rng, sentiment, plural)
    has_foreign = rng.random(rows) < FOREIGN_SHARE
    emoji = vocab.emoji.pick(rng, sentiment, plural)
    has_emoji = rng.random(rows) < EMOJI_SHARE
    curly = rng.random(rows) < CURLY_APOSTROPHE_SHARE
    paragraphs = rng.random(rows) < np.where(long, 0.5, PARAGRAPH_SHARE)
    color = rng.choice(np.array(phrases.COLORS, dtype=object), rows)
    size = rng.choice(np.array(phrases.SIZES, dtype=object), rows)
    height = rng.choice(np.array(phrases.HEIGHTS, dtype=object), rows)
    title = vocab.titles.pick(rng, sentiment, plural)
    has_title = rng.random(rows) >= empty_title_share
    has_text = rng.random(rows) >= empty_text_share

    texts: list[str | None] = [None] * rows
    titles: list[str | None] = [None] * rows
    for i in range(rows):
        fill = {"item": item[i], "color": color[i], "size": size[i], "height": height[i]}
        if has_title[i]:
            titles[i] = title[i].format_map(fill)
        if not has_text[i]:
            continue
        head = [opening[i]] if has_opening[i] else []
        if has_context[i]:
            head.append(context[i])
        head.extend(dict.fromkeys(body[i][: body_count[i]]))  # a revisited aspect may repeat a sentence
        tail = [closing[i]] if has_closing[i] else []
        if has_foreign[i]:
            tail.append(foreign[i])
        if paragraphs[i] and len(head) > 5:
            middle = len(head) // 2
            text = " ".join(head[:middle]) + "\n\n" + " ".join(head[middle:])
        else:
            text = " ".join(head)
        if tail:
            text += ("\n\n" if paragraphs[i] else " ") + " ".join(tail)
        if has_emoji[i]:
            text += " " + emoji[i]
        text = text.format_map(fill)
        texts[i] = text.replace("'", "’") if curly[i] else text

    age = np.clip(np.rint(rng.normal(43, 12, rows)), 18, 99).astype(np.int64)
    feedback = rng.negative_binomial(0.6, 0.18, rows) + long * rng.integers(0, 6, rows)
    frame = pd.DataFrame(
        {
            "Clothing ID": product,
            "Age": age,
            "Title": titles,
            TEXT_COLUMN: texts,
            RATING_COLUMN: rating,
            "Recommended IND": recommended,
            "Positive Feedback Count": feedback,
            "Division Name": catalog.division[product],
            "Department Name": catalog.department[product],
            "Class Name": catalog.class_name[product],
        }
    )
    return frame[list(RAW_COLUMNS)]


def _rows_per_file(rows: int, files: int) -> list[int]:
    return [rows // files + (1 if index < rows % files else 0) for index in range(files)]


def _chunks(rows: int, size: int) -> Iterator[int]:
    while rows > 0:
        yield min(rows, size)
        rows -= size


def _open(path: Path, gzip: bool) -> IO[str]:
    if gzip:
        # Level 1 compresses review text about 3x at several times the speed of the default level.
        return gzip_module.open(path, "wt", encoding="utf-8", newline="", compresslevel=1)
    return path.open("w", encoding="utf-8", newline="")


def write_synthetic_reviews(
    out_dir: str | Path, rows: int, files: int = 1, seed: int = 0, gzip: bool = False, progress: bool = False
) -> list[Path]:
    """Write ``rows`` reviews across ``files`` CSV files ``reviews-00000.csv[.gz]`` ... in ``out_dir``.

    The output depends only on the arguments: file ``k`` draws from its own generator seeded with
    ``(seed, k)``. Returns the paths written, in order.
    """
    if rows < 1:
        raise ValueError(f"--rows must be at least 1, got {rows}")
    if not 1 <= files <= rows:
        raise ValueError(f"--files must be between 1 and --rows ({rows}), got {files}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    suffix = ".csv.gz" if gzip else ".csv"
    paths: list[Path] = []
    first_index = 0
    with tqdm(total=rows, unit="rows", disable=not progress, desc="synthetic reviews") as bar:
        for file_index, file_rows in enumerate(_rows_per_file(rows, files)):
            rng = np.random.default_rng([seed, file_index])
            path = out / f"reviews-{file_index:05d}{suffix}"
            with _open(path, gzip) as handle:
                for chunk_index, chunk_rows in enumerate(_chunks(file_rows, CHUNK_ROWS)):
                    frame = compose_reviews(rng, chunk_rows)
                    frame.index = pd.RangeIndex(first_index, first_index + chunk_rows)
                    frame.to_csv(handle, header=chunk_index == 0, lineterminator="\n")
                    first_index += chunk_rows
                    bar.update(chunk_rows)
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="reviews in total (default 1,000,000)")
    parser.add_argument("--files", type=int, default=8, help="split the rows across this many files")
    parser.add_argument("--out", type=Path, required=True, help="folder to write reviews-NNNNN.csv into")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same files")
    parser.add_argument("--gzip", action="store_true", help="write .csv.gz instead of .csv")
    args = parser.parse_args(argv)
    try:
        started = time.perf_counter()
        paths = write_synthetic_reviews(args.out, args.rows, args.files, args.seed, args.gzip, progress=True)
    except ValueError as error:
        parser.error(str(error))
    seconds = time.perf_counter() - started
    size_mb = sum(path.stat().st_size for path in paths) / 1e6
    print(
        f"wrote {args.rows:,} reviews in {len(paths)} file(s) ({size_mb:,.1f} MB) to {args.out} in {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
