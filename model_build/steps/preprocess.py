"""The processing step: raw review CSVs -> labelled, split, tokenized Parquet and Feature Store records.

SageMaker Processing runs it as ``python3 preprocess.py --args`` with the raw files under
``/opt/ml/processing/input/data`` and writes under ``/opt/ml/processing/output``; the local mode passes other
folders. Outputs, one subfolder each (the pipeline's processing outputs)::

    train/ validation/ test/   <input-stem>-<8 hex>.parquet   review_id, sentiment, label_id, input_ids,
                                                              attention_mask, review_body, split_type
    features/                  <input-stem>-<8 hex>.parquet   the Feature Store records (features.FEATURE_NAMES),
                                                              with the run's event time (``date``)
    rejects/                   <input-stem>-<8 hex>.csv       every dropped row unchanged + reject_reason,
                                                              source_file, source_row, source_line
                               summary-<8 hex>.json           the counts printed at the end (one per instance)
                               ingest-failures-<8 hex>.csv    records the Feature Store refused after retries

Every output file is named after its input file (stem + a hash of its path under the input folder); on more
than one instance each name also carries the instance (``-i<index>``), so instances never write the same name
into the output prefix they share.

How rows are decided, in two passes over the files so that memory stays flat however many rows come in:

1. *Scan*: read every file in chunks, give each row its ``review_id`` (a hash of the raw row's bytes) and
   either its label or why it is rejected (``too_many_fields``/``too_few_fields``: not as many fields as the
   header, ``invalid_encoding``, ``missing_review_text``, ``invalid_rating``).
   Only 9 bytes a row are kept. Then duplicates of an earlier row (``duplicate_review``) and, with
   ``--balance-dataset``, rows beyond the smallest class's count (``balanced_out``) are marked, and the kept
   rows are split. Balancing never drops a human label (a row with a ``Label Source``): each class keeps
   those first (:func:`balance`), and the log and the summary say per class what was dropped.
2. *Process*: read the files again in chunks; write rejects; tokenize the kept rows' text in one batched call
   per chunk; write the split and feature Parquet files; optionally put the records into the Feature Store.

The split is stratified exactly per class: the kept rows of each class are ordered by a hash of
``(seed, review_id)`` and cut into counts that follow the ratios (largest remainder, then at least one row in
every split with a ratio above 0 when the class has a row for each). So every class is in every split when it
can be, and the split depends only on the seed and the set of kept rows: not on file names, file order, row
order or chunk size, so a re-run on the same data gives the same split. Before anything is written the step
refuses a split whose test set holds fewer than ``--min-test-reviews-per-class`` reviews of some class (exit
1, naming the class, the count and the threshold): a quality gate on a handful of reviews says little.

More than one instance (``ProcessingInstanceCount``): every instance gets the whole input
(``FullyReplicated``) and reads which one it is from SageMaker's ``/opt/ml/config/resourceconfig.json``
(``current_host`` among ``hosts``; without the file it is the only one). Every instance scans all rows, so
duplicates, balancing, the split and the test-size check are decided over the whole input, identically on
every instance; then each instance writes, tokenizes and ingests only the rows whose ``review_id`` hashes to
its index. The union of the instances' outputs is therefore exactly what one instance writes, for any number
of files (one large CSV included), and an instance that owns no row writes its summary and succeeds. What this
costs: every instance reads and parses the whole input twice (the scan, then the rows it owns), which is cheap
next to tokenizing (about a tenth of the work per row here); the expensive part, tokenizing, writing and
ingesting, is split N ways. Sharding the files by key instead would leave one big file on one instance, an
instance without a file with nothing to read, and the split decided per instance.

Rows whose bytes are not valid UTF-8 are rejected one by one (``invalid_encoding``), not the whole file: every
file's bytes are first checked with Python's UTF-8 decoder (C speed, one sequential read); a file that is valid
(the usual case) is parsed exactly as before, and only a file that is not is parsed with
``errors="surrogateescape"``, which maps each invalid byte to a lone surrogate; a row with one is rejected
and written to the rejects file with its original bytes (the rejects file is written with the same error
handler, so those rows are byte for byte what came in, and that file is then not valid UTF-8 either: read it
with ``encoding_errors="surrogateescape"``). The header must be valid UTF-8: a file without a readable header
is refused as a whole, the message naming its first bad byte and the byte's offset (or a NUL byte: binary).

Exit status: 2 for invalid arguments (argparse), 1 for input that cannot be processed (missing folder, no CSV,
a file without ``Review Text`` or ``Rating``, an unreadable file, no valid row, a test split too small for the
gate) and for failed ingestion.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import gzip
import hashlib
import itertools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import csv_rows
import features
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import token_cut
from arguments import non_negative_int, positive_int, str_to_bool
from tqdm import tqdm

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Rows are tokenized in one batched Rust call per chunk; that parallelism is the point of batching. Set before
# `tokenizers` is imported (it reads the variable once); nothing here forks after tokenizing.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

SPLIT_OUTPUTS: tuple[str, ...] = features.SPLITS
REJECTS = "rejects"
FEATURES = "features"
SUMMARY_PREFIX = "summary-"
INGEST_FAILURES_PREFIX = "ingest-failures-"
PUT_ATTEMPTS = 10
"""Tries per record, the first included, before it counts as failed (botocore's adaptive retry mode)."""
"""``rejects/summary-<hash>.json``: in a declared output, so SageMaker uploads it with the rejects."""

# Why a row is not kept; the order is the order of the checks.
TOO_MANY_FIELDS = csv_rows.TOO_MANY_FIELDS
TOO_FEW_FIELDS = csv_rows.TOO_FEW_FIELDS
INVALID_ENCODING = "invalid_encoding"
MISSING_TEXT = "missing_review_text"
INVALID_RATING = "invalid_rating"
DUPLICATE = "duplicate_review"
BALANCED_OUT = "balanced_out"
REJECT_REASONS: tuple[str, ...] = (
    TOO_MANY_FIELDS,
    TOO_FEW_FIELDS,
    INVALID_ENCODING,
    MISSING_TEXT,
    INVALID_RATING,
    DUPLICATE,
    BALANCED_OUT,
)
# A row's decision is one int8: a label id (0, 1, 2) when kept, or a negative reject code.
REJECT_CODES: dict[str, int] = {reason: -(index + 1) for index, reason in enumerate(REJECT_REASONS)}
REASON_BY_CODE: dict[int, str] = {code: reason for reason, code in REJECT_CODES.items()}

RAW_ERRORS = "surrogateescape"
"""How the bytes of a file that is not valid UTF-8 are decoded, and how its rejects are written back."""
UTF8_CHECK_BLOCK = 1 << 20
HEADER_LIMIT = 1 << 20
"""The most bytes a header row may take: past that, the file is not a CSV file with a header."""

REJECT_EXTRA_COLUMNS: tuple[str, ...] = ("reject_reason", "source_file", "source_row", "source_line")
"""Appended to the raw columns in ``rejects/``; ``source_row`` counts data rows from 1 (the header is row 0),
``source_line`` is the physical line the row starts on (1 = the header's; what an editor shows)."""

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

_ARROW_TYPES = {"Integral": pa.int64(), "Fractional": pa.float64(), "String": pa.string()}
FEATURE_SCHEMA = pa.schema([(f.name, _ARROW_TYPES[f.type]) for f in features.FEATURE_DEFINITIONS])
"""The Feature Store records, typed as ``features.FEATURE_DEFINITIONS`` says (``input_ids`` as a JSON list)."""


RESOURCE_CONFIG = Path("/opt/ml/config/resourceconfig.json")
"""Where SageMaker Processing says which instance this is: ``{"current_host": "algo-2", "hosts": [...]}``."""


class InputError(Exception):
    """Input the step cannot process; the message names the file, column or folder."""


@dataclass(frozen=True)
class Instance:
    """Which of the job's instances this is: it writes the rows whose id hashes to ``index``."""

    index: int = 0
    count: int = 1

    @classmethod
    def from_resource_config(cls, path: Path) -> Instance:
        """This instance as SageMaker describes it; the only instance when the file is not there."""
        if not path.is_file():
            return cls()
        try:
            config = json.loads(path.read_text())
            hosts, current = list(config["hosts"]), config["current_host"]
            return cls(hosts.index(current), len(hosts))
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(
                f"{path}: expected {{'current_host': ..., 'hosts': [...]}} with current_host among the hosts: "
                f"{error}"
            ) from error

    def owns(self, ids: np.ndarray) -> np.ndarray:
        """Which rows are this instance's: a hash of the id, so the share is even and independent of order."""
        if self.count == 1:
            return np.ones(ids.size, dtype=bool)
        return hash_keys(ids, 0, "instance") % np.uint64(self.count) == np.uint64(self.index)

    @property
    def suffix(self) -> str:
        """What tells this instance's output files apart from the others' (nothing on a single instance)."""
        return "" if self.count == 1 else f"-i{self.index}"


# --------------------------------------------------------------------------------------------- arguments


def _ratio(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return number


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-data", type=Path, default=Path("/opt/ml/processing/input/data"))
    parser.add_argument("--output-data", type=Path, default=Path("/opt/ml/processing/output"))
    parser.add_argument(
        "--pretrained-model", default="roberta-base", help="Hugging Face model id or a local folder."
    )
    parser.add_argument("--max-seq-length", type=positive_int, default=128)
    parser.add_argument("--balance-dataset", type=str_to_bool, default=True)
    parser.add_argument("--train-split-percentage", type=_ratio, default=0.90)
    parser.add_argument("--validation-split-percentage", type=_ratio, default=0.05)
    parser.add_argument("--test-split-percentage", type=_ratio, default=0.05)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--min-test-reviews-per-class",
        type=non_negative_int,
        default=5,
        help="Fail when a class has fewer test reviews than this (0: never); a gate on fewer means little.",
    )
    parser.add_argument(
        "--feature-group-name", default="", help="Put the records into this feature group; empty: do not."
    )
    parser.add_argument(
        "--chunk-size", type=positive_int, default=5_000, help="Rows read and tokenized at a time."
    )
    parser.add_argument(
        "--ingest-workers", type=positive_int, default=16, help="Threads putting records (they wait on I/O)."
    )
    parser.add_argument(
        "--resource-config",
        type=Path,
        default=RESOURCE_CONFIG,
        help="SageMaker's description of the job's instances; without the file this is the only instance.",
    )
    args = parser.parse_args(argv)
    total = args.train_split_percentage + args.validation_split_percentage + args.test_split_percentage
    if abs(total - 1.0) > 1e-6:
        parser.error(
            "--train-split-percentage + --validation-split-percentage + --test-split-percentage must be 1, "
            f"got {args.train_split_percentage} + {args.validation_split_percentage} + "
            f"{args.test_split_percentage} = {total:g}"
        )
    return args


# ------------------------------------------------------------------------------------------------ input


@dataclass(frozen=True)
class Source:
    """One input CSV: its path, its path under the input folder, and the stem its outputs are named by."""

    path: Path
    relative: str

    @property
    def output_stem(self) -> str:
        name = Path(self.relative).name
        stem = name[: -len(".csv.gz")] if name.lower().endswith(".csv.gz") else name[: -len(".csv")]
        return f"{stem}-{hashlib.sha1(self.relative.encode()).hexdigest()[:8]}"


def summary_file_name(sources: Sequence[Source], instance: Instance) -> str:
    """One name per set of input files and instance, so that instances never overwrite each other's summary."""
    digest = hashlib.sha1("\n".join(sorted(source.relative for source in sources)).encode()).hexdigest()
    return f"{SUMMARY_PREFIX}{digest[:8]}{instance.suffix}.json"


def find_sources(input_data: Path) -> tuple[list[Source], list[str]]:
    """Every ``*.csv`` and ``*.csv.gz`` under ``input_data`` (or that one file), sorted; and the files ignored."""
    if input_data.is_file():
        return [Source(input_data, input_data.name)], []
    if not input_data.is_dir():
        raise InputError(f"the input folder {input_data} does not exist")
    sources, ignored = [], []
    for path in sorted(p for p in input_data.rglob("*") if p.is_file()):
        relative = path.relative_to(input_data).as_posix()
        if path.name.lower().endswith((".csv", ".csv.gz")):
            sources.append(Source(path, relative))
        else:
            ignored.append(relative)
    if not sources:
        raise InputError(f"no CSV files (*.csv, *.csv.gz) under {input_data}")
    return sources, ignored


def read_header_names(source: Source) -> list[str]:
    """The header row exactly as written (pandas renames an empty name to ``Unnamed: 0``; rejects keep it).

    The header must be UTF-8 text (rows that are not are rejected one by one, but a column name that is not
    cannot be matched or written back), so it is decoded strictly, line by line, and the first bad byte is
    named with its offset; a NUL byte says the file is binary. Blank lines before it are skipped, as pandas
    does. Both steps call this before parsing a file: pandas cannot even build a frame on such a header.
    """
    opener = gzip.open if source.relative.lower().endswith(".gz") else open
    try:
        with opener(source.path, "rb") as handle:
            for record in csv.reader(_header_lines(source, handle.readline)):
                if record:
                    return record
    except (OSError, EOFError, csv.Error) as error:
        raise InputError(f"{source.relative}: cannot be read as a CSV file: {error}") from error
    raise InputError(
        f"{source.relative}: the file is empty; expected a header with "
        f"{features.TEXT_COLUMN!r} and {features.RATING_COLUMN!r}"
    )


def _header_lines(source: Source, readline: Callable[[int], bytes]) -> Iterator[str]:
    """The file's first lines, strictly decoded, as the CSV reader asks for them (a quoted header name may
    hold a newline); at most :data:`HEADER_LIMIT` bytes, so a binary file without newlines is not read whole.
    """
    offset = 0
    while line := readline(HEADER_LIMIT + 1 - offset):
        if offset + len(line) > HEADER_LIMIT:
            raise InputError(
                f"{source.relative}: no header row ends within the first {HEADER_LIMIT // 1024} KiB; "
                "is it a CSV file?"
            )
        nul = line.find(b"\0")
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as error:
            if nul < 0 or error.start < nul:
                before = line[: error.start].decode("utf-8")[-30:]
                after = f", after {before!r}" if before.strip() else ""
                raise InputError(
                    f"{source.relative}: the header is not valid UTF-8 (byte 0x{line[error.start]:02x} at "
                    f"offset {offset + error.start}{after}); expected CSV text saved as UTF-8"
                ) from None
        if nul >= 0:
            raise InputError(
                f"{source.relative}: the header holds a NUL byte (offset {offset + nul}): a binary file, "
                "not CSV text"
            )
        offset += len(line)
        yield decoded


def read_header(source: Source) -> list[str]:
    """The header row (:func:`read_header_names`), which must name ``Review Text`` and ``Rating``."""
    header = read_header_names(source)
    missing = [name for name in (features.TEXT_COLUMN, features.RATING_COLUMN) if name not in header]
    if missing:
        found = ", ".join(repr(name) for name in header)
        raise InputError(
            f"{source.relative}: missing column {' and '.join(map(repr, missing))} "
            f"(found: {found if len(found) <= 300 else found[:300] + ' ...'})"
        )
    return header


def is_valid_utf8(source: Source) -> bool:
    """Whether the whole file (decompressed) is valid UTF-8: one sequential read through the C decoder.

    It decides how the file is parsed (:func:`read_chunks`): strictly, the fast path, or with invalid bytes
    escaped so that the rows holding them can be rejected one by one.
    """
    opener = gzip.open if source.relative.lower().endswith(".gz") else open
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with opener(source.path, "rb") as handle:
            while block := handle.read(UTF8_CHECK_BLOCK):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    except (OSError, EOFError) as error:
        raise InputError(f"{source.relative}: cannot be read: {error}") from error
    return True


@dataclass(frozen=True)
class Chunk:
    """Rows of a file as strings, the physical line each starts on, which of them held bytes that are not
    UTF-8 (None: none did) and which had another number of fields than the header (None: none did).

    A row with the wrong number of fields is made as wide as the header (:func:`csv_rows.fit`: padded, or its
    extra fields joined into the last one), so that it can be written to the rejects without losing anything.
    """

    frame: pd.DataFrame
    invalid_encoding: np.ndarray | None = None
    lines: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    malformed: np.ndarray | None = None
    """Per row: 0, or the reject code of :data:`TOO_MANY_FIELDS` / :data:`TOO_FEW_FIELDS`."""
    field_counts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))

    def __len__(self) -> int:
        return len(self.frame)


def escaped_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows with a lone surrogate in some field: the bytes ``surrogateescape`` could not decode as UTF-8.

    Per column, one join and one strict encode (C speed) says whether the column holds any; only a column
    that does is checked value by value.
    """
    invalid = np.zeros(len(frame), dtype=bool)
    for name in frame.columns:
        values = frame[name].tolist()
        try:
            "".join(values).encode("utf-8")
        except UnicodeEncodeError:
            invalid |= np.fromiter((_has_surrogate(value) for value in values), dtype=bool, count=len(values))
    return invalid


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_chunks(source: Source, chunk_size: int, valid_utf8: bool = True) -> Iterator[Chunk]:
    """The file's rows as strings, exactly as written (empty fields stay ``""``), ``chunk_size`` at a time,
    each with the physical line it starts on (:mod:`csv_rows`, the reader batch scoring uses too).

    ``valid_utf8`` (from :func:`is_valid_utf8`): decode strictly. Otherwise decode with invalid bytes escaped
    and mark the rows that hold any. A row with more or fewer fields than the header is marked, not fatal.
    """
    # Python strings (object), not pandas' Arrow-backed ``str``: every value goes on to Python code (row
    # hashes, the texts handed to the tokenizer), and converting each column to Arrow and back costs more than
    # the string operations gain; Arrow strings could not hold the escaped bytes of an invalid file anyway.
    errors = "strict" if valid_utf8 else RAW_ERRORS
    opener: Any = gzip.open if source.relative.lower().endswith(".gz") else open
    try:
        # The column names as pandas writes them ("Unnamed: 0" for an empty one, "a.1" for a repeated one).
        columns = list(
            pd.read_csv(source.path, nrows=0, encoding="utf-8", encoding_errors=errors, dtype=object).columns
        )
        width = len(columns)
        with (
            csv_rows.any_field_size(),
            opener(source.path, "rt", encoding="utf-8", errors=errors, newline="") as handle,
        ):
            rows = csv_rows.records(handle)
            next(rows, None)  # the header, read and checked by read_header_names
            empty = True
            while batch := list(itertools.islice(rows, chunk_size)):
                empty = False
                yield _chunk(batch, columns, width, valid_utf8)
            if empty:
                yield _chunk([], columns, width, valid_utf8)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, EOFError) as error:
        raise InputError(f"{source.relative}: cannot be read as a CSV file: {error}") from error
    except csv.Error as error:
        raise InputError(f"{source.relative}: cannot be read as a CSV file: {error}") from error


def _chunk(batch: list[tuple[int, list[str]]], columns: list[str], width: int, valid_utf8: bool) -> Chunk:
    counts = np.fromiter((len(fields) for _, fields in batch), dtype=np.int32, count=len(batch))
    lines = np.fromiter((line for line, _ in batch), dtype=np.int64, count=len(batch))
    wrong = counts != width
    values = [
        csv_rows.fit(fields, width) if bad else fields for (_, fields), bad in zip(batch, wrong, strict=True)
    ]
    frame = (
        pd.DataFrame(values, columns=columns, dtype=object)
        if values
        else pd.DataFrame(columns=columns, dtype=object)
    )
    malformed = None
    if wrong.any():
        malformed = np.where(
            counts > width,
            REJECT_CODES[TOO_MANY_FIELDS],
            np.where(counts < width, REJECT_CODES[TOO_FEW_FIELDS], 0),
        ).astype(np.int8)
    invalid = None if valid_utf8 else escaped_rows(frame)
    return Chunk(frame, invalid, lines, malformed, counts)


# ------------------------------------------------------------------------------------- labels, ids, split


def row_ids(frame: pd.DataFrame) -> np.ndarray:
    """64-bit ids from a hash of each row's raw values (every column, the unnamed index included).

    The same row gets the same id in every run, whatever the file is called or where it sits in the input.
    ``surrogateescape`` turns escaped invalid bytes back into the bytes they were (and changes nothing for
    valid text), so a row that is not UTF-8 gets an id too.
    """
    columns = [frame[name].tolist() for name in frame.columns]  # whole columns: far faster than itertuples
    digests = b"".join(
        hashlib.sha1("\x1f".join(row).encode("utf-8", RAW_ERRORS)).digest()[:8]
        for row in zip(*columns, strict=True)
    )
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def review_id_strings(ids: np.ndarray) -> list[str]:
    """The ``review_id`` feature: 16 hex characters (the first 64 bits of the row's SHA-1)."""
    return [f"{int(value):016x}" for value in ids]


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
    test = SPLIT_OUTPUTS.index("test")
    short = []
    for label in features.SENTIMENT_BY_LABEL_ID:
        in_test = int(np.count_nonzero((codes == label) & (splits == test)))
        if in_test < minimum:
            kept = int(np.count_nonzero(codes == label))
            short.append(f"{_sentiment_name(label)!r} has {in_test} test reviews (of {kept} kept)")
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
            part = f"{_sentiment_name(label)} {count} -> {count - self.dropped[label]} (dropped {self.dropped[label]}"
            part += f", all {self.human[label]} human labels kept" if self.human[label] else ""
            parts.append(part + ")")
        over = [_sentiment_name(label) for label in self.before if self.human[label] > self.target]
        note = (
            f"; {', '.join(over)}: more human labels than {self.target}, all kept (balancing never drops a "
            "person's label)"
            if over
            else ""
        )
        return f"balancing to {self.target} per class: " + "; ".join(parts) + note

    def as_dict(self) -> dict[str, Any]:
        def named(counts: dict[int, int]) -> dict[str, int]:
            return {_sentiment_name(label): count for label, count in counts.items()}

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


# ------------------------------------------------------------------------------------------- tokenizing


def load_tokenizer(pretrained_model: str, max_seq_length: int) -> Tokenizer:
    """The model's fast (Rust) tokenizer, set to truncate at ``max_seq_length`` and not to pad.

    We call the ``tokenizers`` backend directly, which is what the ``transformers`` wrapper runs underneath,
    without the per-row Python conversion the wrapper adds. A model folder with the backend's own file
    (``tokenizer.json``) is loaded from it without importing ``transformers``, whose import (torch with it)
    takes seconds of a step that otherwise needs none of it; a model id, or a folder without that file, goes
    through ``AutoTokenizer``. Both give the same backend (a test compares them token for token).
    """
    folder = Path(pretrained_model)
    if (folder / TOKENIZER_FILE).is_file():
        backend, model_max_length = _tokenizer_from_folder(folder)
    else:
        backend, model_max_length = _tokenizer_from_transformers(pretrained_model)
    if model_max_length is not None and max_seq_length > model_max_length:
        raise InputError(
            f"--max-seq-length {max_seq_length} is longer than {pretrained_model!r} accepts "
            f"({model_max_length} tokens)"
        )
    backend.enable_truncation(max_length=max_seq_length)
    backend.no_padding()
    return backend


TOKENIZER_FILE = "tokenizer.json"
UNSET_MAX_LENGTH = 10**12
"""``transformers`` stands a huge number in for a model without a length limit; above this, there is none."""


def _tokenizer_from_folder(folder: Path) -> tuple[Tokenizer, int | None]:
    from tokenizers import Tokenizer

    try:
        backend = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    except Exception as error:  # tokenizers raises a bare Exception on a file it cannot parse
        raise InputError(f"--pretrained-model {str(folder)!r}: cannot load its tokenizer: {error}") from error
    limit = config.get("model_max_length")
    return backend, int(limit) if isinstance(limit, int | float) and limit < UNSET_MAX_LENGTH else None


def _tokenizer_from_transformers(pretrained_model: str) -> tuple[Tokenizer, int | None]:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model)
    except (OSError, ValueError) as error:
        offline = (
            " (HF_HUB_OFFLINE is set, so the Hugging Face hub was not asked: give a model folder, or set "
            "HF_HUB_OFFLINE=0 to download it)"
            if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
            else ""
        )
        raise InputError(
            f"--pretrained-model {pretrained_model!r}: cannot load its tokenizer{offline}: {error}"
        ) from error
    if not tokenizer.is_fast:
        raise InputError(f"--pretrained-model {pretrained_model!r} has no fast (tokenizers) tokenizer")
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())  # a copy: leave the wrapper as it was
    limit = tokenizer.model_max_length
    return backend, int(limit) if limit < UNSET_MAX_LENGTH else None


@dataclass(frozen=True)
class Tokenized:
    """Token ids of a batch of texts as one flat array plus row offsets (the layout of an Arrow list)."""

    values: np.ndarray
    offsets: np.ndarray

    def lists(self) -> pa.ListArray:
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), pa.array(self.values, pa.int32()))

    def ones(self) -> pa.ListArray:
        """The attention mask: unpadded sequences attend to every token."""
        ones = np.ones(self.values.size, dtype=np.int32)
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), pa.array(ones))


def tokenize(tokenizer: Tokenizer, texts: Sequence[str]) -> Tokenized:
    """One batched call for all texts (Rust threads), truncated, special tokens added, not padded; each text
    cut first to what the truncation keeps (:mod:`token_cut`, as the serving handler does: the same ids)."""
    limit = (tokenizer.truncation or {}).get("max_length")
    kept = [token_cut.cut(text, limit) for text in texts] if limit else list(texts)
    ids = [encoding.ids for encoding in tokenizer.encode_batch_fast(kept)]
    whole = [
        i
        for i, text in enumerate(texts)
        if limit and token_cut.must_tokenize_whole(text, kept[i], len(ids[i]), limit)
    ]
    for i, encoding in zip(whole, tokenizer.encode_batch_fast([texts[i] for i in whole]), strict=True):
        ids[i] = encoding.ids
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum([len(row) for row in ids], out=offsets[1:])
    values = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=int(offsets[-1]))
    return Tokenized(values, offsets)


# ---------------------------------------------------------------------------------------------- output


@dataclass
class Counts:
    """What happened to every row read; ``read == kept + rejected`` is checked before anything is reported."""

    read: int = 0
    kept: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    by_split: dict[str, Counter[str]] = field(
        default_factory=lambda: {split: Counter() for split in SPLIT_OUTPUTS}
    )
    files: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        sentiments = features.SENTIMENT_NAMES.values()
        return {
            "read": self.read,
            "kept": self.kept,
            "rejected": {reason: self.rejected[reason] for reason in REJECT_REASONS},
            "splits": {split: sum(self.by_split[split].values()) for split in SPLIT_OUTPUTS},
            "sentiments": {name: sum(c[name] for c in self.by_split.values()) for name in sentiments},
            "split_sentiments": {
                split: {name: self.by_split[split][name] for name in sentiments} for split in SPLIT_OUTPUTS
            },
            "files": self.files,
        }


class ChunkWriters:
    """Parquet writers opened on first use, one per output file; a file is only created if it gets rows."""

    def __init__(self) -> None:
        self._writers: dict[Path, pq.ParquetWriter] = {}

    def write(self, path: Path, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if path not in self._writers:
            self._writers[path] = pq.ParquetWriter(path, table.schema, compression="zstd")
        self._writers[path].write_table(table)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def write_rejects(
    handle: Any,
    frame: pd.DataFrame,
    header: list[str],
    codes: np.ndarray,
    source: Source,
    row_numbers: np.ndarray,
    line_numbers: np.ndarray,
) -> None:
    """Append the rejected rows of a chunk, unchanged, with why, from where (file, data row from 1, line).

    ``row_numbers`` holds each row's place in its file (data rows from 1), ``line_numbers`` the physical line
    it starts on. ``handle`` is opened with ``errors=RAW_ERRORS``: a row that was not UTF-8 is written with
    its own bytes. A row with another number of fields than the header comes made as wide as the header
    (:func:`csv_rows.fit`: padded, or its extra fields joined into the last column).
    """
    rejected = np.flatnonzero(codes < 0)
    if rejected.size == 0:
        return
    rows = frame.iloc[rejected].copy()
    if len(header) == rows.shape[1]:
        rows.columns = header
    reason, source_file, source_row, source_line = REJECT_EXTRA_COLUMNS
    rows[reason] = [REASON_BY_CODE[int(code)] for code in codes[rejected]]
    rows[source_file] = source.relative
    rows[source_row] = row_numbers[rejected]
    rows[source_line] = line_numbers[rejected]
    rows.to_csv(handle, header=handle.tell() == 0, index=False, lineterminator="\n")


class FeatureStoreIngestor:
    """Puts records into a feature group with a thread pool; keeps every record that failed after retries.

    Rate: ``PutRecord`` takes one record a call, so an instance puts about ``workers / latency`` records a
    second: at the 10-30 ms a call takes from inside the region, the default 16 threads give roughly 500-1,500
    records/s per instance (the threads wait on the network, not the CPU), and N instances put N times that,
    each its own share. Throttling (``ThrottlingException``, 429, 5xx) is retried by botocore's *adaptive* mode:
    exponential backoff with jitter, plus a client-side rate limit that slows every thread of the instance
    once the service throttles, up to ``PUT_ATTEMPTS`` tries a record. A record that still fails is counted
    and written to ``rejects/ingest-failures-*.csv`` with the error (the record itself is in ``features/``,
    ready to put again), and the step then fails, naming how many: it never reports success with records
    missing from the online store.

    The client is created plainly, so ``AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME`` redirects it (the
    local mode's stand-in). boto3 is imported only here: without ingestion the step needs no AWS library.
    """

    def __init__(self, feature_group_name: str, workers: int) -> None:
        import boto3
        from botocore.config import Config

        self.feature_group_name = feature_group_name
        self.client = boto3.client(
            "sagemaker-featurestore-runtime",
            config=Config(
                retries={"max_attempts": PUT_ATTEMPTS, "mode": "adaptive"}, max_pool_connections=workers
            ),
        )
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="put-record")
        self.put = 0
        self.failures: list[tuple[str, str]] = []
        """(review_id, error) of every record that could not be put."""

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def errors(self) -> list[str]:
        """The first few failures, for the step's error message."""
        return [
            f"{features.RECORD_IDENTIFIER}={review_id}: {error}" for review_id, error in self.failures[:5]
        ]

    def write_failures(self, path: Path) -> None:
        """``review_id,error`` of each failed record (nothing when none failed)."""
        if self.failures:
            pd.DataFrame(self.failures, columns=[features.RECORD_IDENTIFIER, "error"]).to_csv(
                path, index=False
            )

    def _put(self, record: list[dict[str, str]]) -> tuple[str, str] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_record(FeatureGroupName=self.feature_group_name, Record=record)
        except (ClientError, BotoCoreError) as error:
            review_id = next(
                v["ValueAsString"] for v in record if v["FeatureName"] == features.RECORD_IDENTIFIER
            )
            return review_id, str(error)
        return None

    def ingest(self, table: pa.Table) -> None:
        columns = [table.column(name).to_pylist() for name in features.FEATURE_NAMES]
        records = [
            [
                {"FeatureName": name, "ValueAsString": str(value)}
                for name, value in zip(features.FEATURE_NAMES, row, strict=True)
            ]
            for row in zip(*columns, strict=True)
        ]
        for failure in self.pool.map(self._put, records):
            self.put += 1
            if failure is not None:
                self.failures.append(failure)

    def close(self) -> None:
        self.pool.shutdown()


def print_summary(counts: Counts) -> None:
    summary = counts.as_dict()
    print(f"\nread {counts.read} rows from {len(counts.files)} files: kept {counts.kept}")
    for reason in REJECT_REASONS:
        print(f"  rejected {reason:<22} {counts.rejected[reason]:>10}")
    names = list(features.SENTIMENT_NAMES.values())
    print(f"\n  {'split':<12}" + "".join(f"{name:>10}" for name in names) + f"{'total':>10}")
    for split, by_sentiment in summary["split_sentiments"].items():
        print(
            f"  {split:<12}"
            + "".join(f"{by_sentiment[name]:>10}" for name in names)
            + f"{summary['splits'][split]:>10}"
        )
    print(
        f"  {'total':<12}" + "".join(f"{summary['sentiments'][n]:>10}" for n in names) + f"{counts.kept:>10}"
    )


# ------------------------------------------------------------------------------------------------ main


def scan(
    sources: Sequence[Source], chunk_size: int, valid_utf8: Sequence[bool]
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Pass 1: per file, every row's id, label (or reject code) and whether the label is a person's."""
    ids_per_file, codes_per_file, human_per_file = [], [], []
    with tqdm(desc="scan", unit=" rows", mininterval=2.0) as bar:
        for source, valid in zip(sources, valid_utf8, strict=True):
            file_ids, file_codes = [np.empty(0, np.uint64)], [np.empty(0, np.int8)]
            file_human = [np.empty(0, bool)]
            malformed: list[str] = []
            for chunk in read_chunks(source, chunk_size, valid):
                file_ids.append(row_ids(chunk.frame))
                file_codes.append(row_codes(chunk.frame, chunk.invalid_encoding, chunk.malformed))
                file_human.append(human_labels(chunk.frame))
                bar.update(len(chunk))
                if chunk.malformed is not None:
                    width = chunk.frame.shape[1]
                    malformed += [
                        csv_rows.describe(int(count), width, int(line))
                        for line, count in zip(
                            chunk.lines[chunk.malformed != 0],
                            chunk.field_counts[chunk.malformed != 0],
                            strict=True,
                        )
                    ]
            if malformed:
                shown = "; ".join(malformed[:5]) + ("; ..." if len(malformed) > 5 else "")
                tqdm.write(
                    f"{source.relative}: {len(malformed)} rows with another number of fields than the header "
                    f"are rejected (rejects/, with their line): {shown}"
                )
            ids_per_file.append(np.concatenate(file_ids))
            codes_per_file.append(np.concatenate(file_codes))
            human_per_file.append(np.concatenate(file_human))
    return ids_per_file, codes_per_file, human_per_file


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # the records' event time: one per run
    ratios = (args.train_split_percentage, args.validation_split_percentage, args.test_split_percentage)

    instance = Instance.from_resource_config(args.resource_config)
    sources, ignored = find_sources(args.input_data)
    print(f"{len(sources)} CSV files under {args.input_data}")
    if instance.count > 1:
        print(f"instance {instance.index + 1} of {instance.count}: writes the rows whose id hashes to it")
    if ignored:
        print(f"ignoring {len(ignored)} files that are not CSV: {', '.join(ignored)}")
    headers = [read_header(source) for source in sources]
    tokenizer = load_tokenizer(args.pretrained_model, args.max_seq_length)  # before the long scan: fail fast

    valid_utf8 = [is_valid_utf8(source) for source in sources]
    for source, valid in zip(sources, valid_utf8, strict=True):
        if not valid:
            print(f"{source.relative}: not all valid UTF-8; rows with invalid bytes are rejected one by one")
    ids_per_file, codes_per_file, human_per_file = scan(sources, args.chunk_size, valid_utf8)
    file_sizes = [file_ids.size for file_ids in ids_per_file]
    ids, codes = np.concatenate(ids_per_file), np.concatenate(codes_per_file)
    human = np.concatenate(human_per_file)
    del ids_per_file, codes_per_file, human_per_file
    mark_duplicates(ids, codes)
    balancing = None
    if args.balance_dataset:
        balancing = balance(ids, codes, args.seed, human)
        print(balancing.describe() + f" -> {int(np.count_nonzero(codes >= 0))} rows kept")
    if not np.any(codes >= 0):
        reasons = Counter(REASON_BY_CODE[int(code)] for code in codes)
        raise InputError(
            f"no valid rows: read {codes.size} rows from {len(sources)} files under {args.input_data}; "
            + (
                ", ".join(f"{reason} {count}" for reason, count in reasons.items())
                or "the files hold no rows"
            )
        )
    splits = assign_splits(ids, codes, args.seed, ratios)
    check_test_size(codes, splits, args.min_test_reviews_per_class)
    owned = instance.owns(ids)

    for folder in (*SPLIT_OUTPUTS, REJECTS, FEATURES):
        (args.output_data / folder).mkdir(parents=True, exist_ok=True)
    ingestor = (
        FeatureStoreIngestor(args.feature_group_name, args.ingest_workers)
        if args.feature_group_name
        else None
    )
    counts = Counts()
    file_starts = np.cumsum([0, *file_sizes])
    try:
        with (
            tqdm(total=codes.size, desc="tokenize", unit=" rows", mininterval=2.0) as bar,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as tokenizing,
        ):
            shared = SecondPass(
                args.output_data,
                args.chunk_size,
                tokenizer,
                date,
                counts,
                ingestor,
                bar,
                tokenizing,
                instance,
            )
            for index, source in enumerate(sources):
                rows = slice(file_starts[index], file_starts[index + 1])
                decided = Decisions(ids[rows], codes[rows], splits[rows], owned[rows])
                process_file(source, headers[index], decided, shared, valid_utf8[index])
    finally:
        if ingestor:
            ingestor.close()

    print_summary(counts)
    rejected = sum(counts.rejected.values())
    if counts.read != counts.kept + rejected:
        raise InputError(f"rows lost: read {counts.read} != kept {counts.kept} + rejected {rejected}")
    summary = {
        **counts.as_dict(),
        "date": date,
        "pretrained_model": args.pretrained_model,
        "max_seq_length": args.max_seq_length,
        "balance_dataset": args.balance_dataset,
        "balancing": balancing.as_dict() if balancing else None,
        "human_labels": {
            "kept": int(np.count_nonzero((codes >= 0) & human)),
            "splits": {
                split: int(np.count_nonzero((codes >= 0) & human & (splits == index)))
                for index, split in enumerate(SPLIT_OUTPUTS)
            },
        },
        "split_ratios": dict(zip(SPLIT_OUTPUTS, ratios, strict=True)),
        "seed": args.seed,
        "min_test_reviews_per_class": args.min_test_reviews_per_class,
        "instance": {"index": instance.index, "count": instance.count, "rows_scanned": int(codes.size)},
        "seconds": round(time.perf_counter() - started, 1),
    }
    if ingestor:
        summary["ingested"] = {
            "feature_group": ingestor.feature_group_name,
            "put": ingestor.put,
            "failed": ingestor.failed,
        }
    summary_path = args.output_data / REJECTS / summary_file_name(sources, instance)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    if ingestor and ingestor.failed:
        failures_path = summary_path.with_name(
            INGEST_FAILURES_PREFIX + summary_path.name.removeprefix(SUMMARY_PREFIX).replace(".json", ".csv")
        )
        ingestor.write_failures(failures_path)
        raise InputError(
            f"{ingestor.failed} of {ingestor.put} records could not be put into feature group "
            f"{ingestor.feature_group_name!r} after {PUT_ATTEMPTS} tries each (all listed in "
            f"{failures_path.relative_to(args.output_data)}); first errors: " + "; ".join(ingestor.errors)
        )
    print(f"done in {summary['seconds']} s; outputs under {args.output_data}")
    return 0


@dataclass(frozen=True)
class SecondPass:
    """What the second pass over every file shares: where and how to write, and what to count in."""

    output: Path
    chunk_size: int
    tokenizer: Tokenizer
    date: str
    counts: Counts
    ingestor: FeatureStoreIngestor | None
    progress: tqdm
    tokenizing: ThreadPoolExecutor
    """One thread: a chunk is tokenized while the one before it is written."""
    instance: Instance = field(default_factory=Instance)


@dataclass(frozen=True)
class Decisions:
    """What the scan decided for each row of one file: id, label or reject code, split, and whose it is."""

    ids: np.ndarray
    codes: np.ndarray
    splits: np.ndarray
    owned: np.ndarray

    def __len__(self) -> int:
        return int(self.codes.size)


def process_file(
    source: Source, header: list[str], decided: Decisions, shared: SecondPass, valid_utf8: bool = True
) -> None:
    """Pass 2 over one file: the rows this instance owns: rejects, kept rows tokenized into the outputs."""
    stem, counts = source.output_stem + shared.instance.suffix, shared.counts
    rejects_path = shared.output / REJECTS / f"{stem}.csv"
    writers = ChunkWriters()
    position, owned_rows = 0, 0
    pending: tuple[KeptRows, Future[Tokenized]] | None = None
    try:
        with rejects_path.open("w", encoding="utf-8", errors=RAW_ERRORS, newline="") as rejects:
            for raw in read_chunks(source, shared.chunk_size, valid_utf8):
                rows = slice(position, position + len(raw))
                if rows.stop > len(decided):
                    break  # the file grew since the scan: reported below
                mine = np.flatnonzero(decided.owned[rows])
                position += len(raw)
                shared.progress.update(len(raw))
                chunk = raw.frame if mine.size == len(raw) else raw.frame.iloc[mine]
                ids, codes = decided.ids[rows][mine], decided.codes[rows][mine]
                write_rejects(rejects, chunk, header, codes, source, mine + rows.start + 1, raw.lines[mine])
                counts.rejected.update(REASON_BY_CODE[int(code)] for code in codes[codes < 0])
                kept = kept_rows(chunk, ids, codes, decided.splits[rows][mine])
                # Tokenized in the background (the Rust call releases the GIL) while the previous chunk is
                # written and the next one read: the writing no longer leaves a core idle.
                tokenizing = shared.tokenizing.submit(tokenize, shared.tokenizer, kept.texts)
                if pending:
                    write_kept(*pending, stem, writers, shared)
                pending = (kept, tokenizing)
                owned_rows += mine.size
            if pending:
                write_kept(*pending, stem, writers, shared)
    finally:
        if pending:
            pending[1].cancel()
        writers.close()
    if rejects_path.stat().st_size == 0:
        rejects_path.unlink()  # like the Parquet outputs: no file for nothing
    if position != len(decided):
        raise InputError(f"{source.relative}: changed while it was processed (scanned {len(decided)} rows)")
    counts.files[source.relative] = owned_rows
    counts.read += owned_rows


def _sentiment_name(label_id: int) -> str:
    return features.SENTIMENT_NAMES[features.SENTIMENT_BY_LABEL_ID[label_id]]


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


def write_kept(
    kept: KeptRows, tokenizing: Future[Tokenized], stem: str, writers: ChunkWriters, shared: SecondPass
) -> None:
    """Write a chunk's kept rows, once tokenized, into the split and feature files, and put its records."""
    table = kept_table(kept, tokenizing.result())
    for split in SPLIT_OUTPUTS:
        part = table.filter(pc.equal(table["split_type"], split))
        writers.write(shared.output / split / f"{stem}.parquet", part)
        by_label = np.bincount(part["label_id"].to_numpy(), minlength=len(features.SENTIMENT_BY_LABEL_ID))
        shared.counts.by_split[split].update(
            {_sentiment_name(label): int(count) for label, count in enumerate(by_label) if count}
        )
    records = feature_records(table, shared.date)
    writers.write(shared.output / FEATURES / f"{stem}.parquet", records)
    if shared.ingestor:
        shared.ingestor.ingest(records)
    shared.counts.kept += table.num_rows


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
            pa.array(np.array(SPLIT_OUTPUTS, dtype=object)[kept.splits].tolist(), pa.string()),
        ],
        schema=SPLIT_SCHEMA,
    )


def json_lists(lists: pa.ChunkedArray) -> pa.ChunkedArray:
    """``input_ids`` as the Feature Store stores it, a JSON list per row (``[0,713,2]``), built in Arrow's C++.

    Casting the ids to strings and joining them in Arrow is several times faster than a Python join per row.
    """
    joined = pc.binary_join(pc.cast(lists, pa.list_(pa.string())), ",")
    return pc.binary_join_element_wise("[", joined, "]", "")


def feature_records(table: pa.Table, event_time: str) -> pa.Table:
    """The Feature Store records of kept rows: ``input_ids`` as a JSON list string, the run's event time."""
    special = {"input_ids", features.EVENT_TIME}
    columns = {name: table[name] for name in features.FEATURE_NAMES if name not in special}
    columns["input_ids"] = json_lists(table["input_ids"])
    columns[features.EVENT_TIME] = pa.array([event_time] * table.num_rows, pa.string())
    return pa.table({name: columns[name] for name in features.FEATURE_NAMES}, schema=FEATURE_SCHEMA)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InputError as error:
        print(f"preprocess.py: error: {error}", file=sys.stderr)
        sys.exit(1)
