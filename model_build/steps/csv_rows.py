"""Reading review CSVs record by record, each with the physical line it starts on: one reader for the
pipeline (the data check and processing) and for batch scoring, so that both treat a bad row alike.

A row with more or fewer fields than the header is one bad row, not a bad file: the reader hands it on with
its field count, and each caller keeps it aside with the line it starts on and why (processing's rejects,
batch scoring's ``unscorable`` rows, the data check's report), and goes on. The line is the file's own line
number (1 = the first line, the header's), the one an editor shows: a review with a newline in a quoted field
takes several lines, so it differs from the record's number, which is what pandas' C parser names in its
``Expected 11 fields in line 2402, saw 13`` (and it stops the whole file there).

Pure standard library: it runs inside the processing container, where the steps import it as a sibling.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

TOO_MANY_FIELDS = "too_many_fields"
TOO_FEW_FIELDS = "too_few_fields"
FIELD_SIZE_LIMIT = 2**31 - 1
"""Fields of any length: a review too long to use is the caller's to refuse (and count), not the CSV reader's
to abort the file on."""


def records(lines: Iterable[str], blank_lines: bool = False) -> Iterator[tuple[int, list[str]]]:
    """Each record of ``lines`` (a file opened with ``newline=""``) with the physical line it starts on,
    header included; blank lines are skipped, as pandas skips them, unless ``blank_lines`` (then they come
    as records without a field: batch scoring answers every line it read)."""
    reader = csv.reader(lines)
    end = 0
    for fields in reader:
        start, end = end + 1, reader.line_num
        if fields or blank_lines:
            yield start, fields


@contextmanager
def any_field_size() -> Iterator[None]:
    """Lift the csv module's field size limit (128 KiB) while reading; restored afterwards."""
    previous = csv.field_size_limit(FIELD_SIZE_LIMIT)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def shape_problem(field_count: int, width: int) -> str | None:
    """:data:`TOO_MANY_FIELDS` or :data:`TOO_FEW_FIELDS` when a record has not ``width`` fields, else None."""
    if field_count > width:
        return TOO_MANY_FIELDS
    if field_count < width:
        return TOO_FEW_FIELDS
    return None


def describe(field_count: int, width: int, line: int) -> str:
    """The sentence a bad row's reason reads as: its line, its field count and the header's."""
    return f"line {line}: the row has {field_count} fields, the header {width}"


def fit(fields: list[str], width: int) -> list[str]:
    """A record made ``width`` wide without losing a character: a short one padded with empty fields, a long
    one's extra fields joined (with commas, as they were written) into its last field."""
    if len(fields) <= width:
        return [*fields, *[""] * (width - len(fields))]
    return [*fields[: width - 1], ",".join(fields[width - 1 :])]
