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
   those first (``splits.balance``), and the log and the summary say per class what was dropped.
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
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
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
from arguments import non_negative_int, positive_int, str_to_bool
from feature_store_ingest import PUT_ATTEMPTS, FeatureStoreIngestor, feature_records
from reviews_csv import (
    RAW_ERRORS,
    REASON_BY_CODE,
    REJECT_REASONS,
    InputError,
    Source,
    find_sources,
    is_valid_utf8,
    read_chunks,
    read_header,
    row_ids,
)
from split_files import KeptRows, kept_rows, kept_table
from splits import (
    assign_splits,
    balance,
    check_test_size,
    hash_keys,
    human_labels,
    mark_duplicates,
    row_codes,
    sentiment_name,
)
from tokenization import Tokenized, load_tokenizer, tokenize
from tqdm import tqdm

if TYPE_CHECKING:
    from tokenizers import Tokenizer


SPLIT_OUTPUTS: tuple[str, ...] = features.SPLITS
REJECTS = "rejects"
FEATURES = "features"
SUMMARY_PREFIX = "summary-"
INGEST_FAILURES_PREFIX = "ingest-failures-"
REJECT_EXTRA_COLUMNS: tuple[str, ...] = ("reject_reason", "source_file", "source_row", "source_line")
"""Appended to the raw columns in ``rejects/``; ``source_row`` counts data rows from 1 (the header is row 0),
``source_line`` is the physical line the row starts on (1 = the header's; what an editor shows)."""

RESOURCE_CONFIG = Path("/opt/ml/config/resourceconfig.json")
"""Where SageMaker Processing says which instance this is: ``{"current_host": "algo-2", "hosts": [...]}``."""


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


def summary_file_name(sources: Sequence[Source], instance: Instance) -> str:
    """One name per set of input files and instance, so that instances never overwrite each other's summary."""
    digest = hashlib.sha1("\n".join(sorted(source.relative for source in sources)).encode()).hexdigest()
    return f"{SUMMARY_PREFIX}{digest[:8]}{instance.suffix}.json"


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
            {sentiment_name(label): int(count) for label, count in enumerate(by_label) if count}
        )
    records = feature_records(table, shared.date)
    writers.write(shared.output / FEATURES / f"{stem}.parquet", records)
    if shared.ingestor:
        shared.ingestor.ingest(records)
    shared.counts.kept += table.num_rows


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InputError as error:
        print(f"preprocess.py: error: {error}", file=sys.stderr)
        sys.exit(1)
