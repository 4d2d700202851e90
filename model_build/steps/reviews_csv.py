"""Reading raw review CSV files: sources, headers, UTF-8 checks, chunks of rows, and each row's ``review_id``.

What the data check and the processing step both read, the same way: a file is found, its header read (and
refused, naming the first bad byte, when it is not UTF-8), its bytes checked, then its rows come in chunks with
their physical lines; a row's ``review_id`` is a hash of its raw bytes, so the same review has the same id in
the data check's report, the splits and the Feature Store.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import csv_rows
import features
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    pass


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


class InputError(Exception):
    """Input the step cannot process; the message names the file, column or folder."""


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
