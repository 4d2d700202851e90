"""The local Feature Store: an offline store of Parquet files queried with SQL, and an online view of it.

SageMaker's offline store is append-only Parquet in S3, with three columns added to every record
(``write_time``, ``api_invocation_time``, ``is_deleted``), queried with Athena. Here the same files sit in the
local S3 folder and DuckDB queries them. Two views:

- ``reviews_history``: every row ever written, as Athena sees the offline store (re-ingested records twice,
  deletions as rows with ``is_deleted = true``);
- ``reviews``: the online view, the latest record per ``review_id`` (by event time, then write time), without
  deleted ones. Ingesting the same records again therefore does not duplicate them here.

The schema is ``features.FEATURE_DEFINITIONS``; records are validated against it as PutRecord does.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from model_build.steps.features import EVENT_TIME, FEATURE_DEFINITIONS, FEATURE_NAMES, RECORD_IDENTIFIER
from pipelines.local.query_limits import (
    TYPED_QUERY_LIMITS,
    QueryLimits,
    QueryStopped,
    RunningQueries,
    parse_row_limit,
)

ONLINE_VIEW = "reviews"
HISTORY_VIEW = "reviews_history"
EXTRA_COLUMNS = ("write_time", "api_invocation_time", "is_deleted")

_ARROW_TYPES = {"Integral": pa.int64(), "Fractional": pa.float64(), "String": pa.string()}
_SQL_TYPES = {"Integral": "BIGINT", "Fractional": "DOUBLE", "String": "VARCHAR"}
_TIMESTAMP = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [pa.field(feature.name, _ARROW_TYPES[feature.type]) for feature in FEATURE_DEFINITIONS]
    + [
        pa.field("write_time", _TIMESTAMP),
        pa.field("api_invocation_time", _TIMESTAMP),
        pa.field("is_deleted", pa.bool_()),
    ]
)
_TYPES = {feature.name: feature.type for feature in FEATURE_DEFINITIONS}

Row = dict[str, Any]


class FeatureStoreError(ValueError):
    """A request the Feature Store refuses (the service answers ``ValidationError``)."""


def parse_record(record: Sequence[Mapping[str, Any]]) -> Row:
    """A PutRecord ``Record`` (``[{"FeatureName": .., "ValueAsString": ..}]``) -> typed values, validated."""
    row: Row = {}
    for entry in record:
        name = entry.get("FeatureName")
        if name not in _TYPES:
            raise FeatureStoreError(
                f"feature {name!r} is not defined in the feature group (defined: {', '.join(FEATURE_NAMES)})"
            )
        if name in row:
            raise FeatureStoreError(f"feature {name!r} appears twice in the record")
        if "ValueAsString" not in entry:
            raise FeatureStoreError(
                f"feature {name!r} has no ValueAsString (collection types are not used here)"
            )
        row[name] = _typed(name, entry["ValueAsString"])
    for required in (RECORD_IDENTIFIER, EVENT_TIME):
        if row.get(required) in (None, ""):
            raise FeatureStoreError(f"the record has no {required!r}, which every record needs")
    event_time(row[EVENT_TIME])
    return row


def _typed(name: str, text: str) -> Any:
    feature_type = _TYPES[name]
    try:
        if feature_type == "Integral":
            return int(text)
        if feature_type == "Fractional":
            return float(text)
    except (TypeError, ValueError):
        raise FeatureStoreError(f"feature {name!r} is {feature_type} but its value is {text!r}") from None
    return str(text)


def event_time(text: str) -> datetime:
    """The event time as a UTC datetime; the Feature Store accepts ISO-8601 strings for a String feature."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise FeatureStoreError(
            f"event time {EVENT_TIME}={text!r} is not an ISO-8601 timestamp (e.g. 2024-05-01T12:00:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def as_strings(row: Row) -> list[dict[str, str]]:
    """A row as a GetRecord ``Record``: features with a value, each ``ValueAsString``."""
    return [
        {"FeatureName": name, "ValueAsString": str(row[name])}
        for name in FEATURE_NAMES
        if row.get(name) is not None
    ]


def _naming_the_views(error: duckdb.Error) -> FeatureStoreError:
    """A bad query's error, with the views it may use and their columns."""
    return FeatureStoreError(
        f"{error}\n  tables: {ONLINE_VIEW}({', '.join(FEATURE_NAMES)}), "
        f"{HISTORY_VIEW}(the same, {', '.join(EXTRA_COLUMNS)})"
    )


class FeatureStore:
    """One feature group's offline store folder (``Workspace.offline_store_root``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    # --- writing
    def write(self, rows: Iterable[Row], api_invocation_times: Iterable[datetime] | None = None) -> int:
        """Append validated rows, one Parquet file per event-time hour, as the offline store partitions.

        Each file is written beside its final name and renamed into place, so a reader never sees half of it.
        """
        rows = list(rows)
        if not rows:
            return 0
        written = datetime.now(UTC)
        invoked = list(api_invocation_times) if api_invocation_times is not None else [written] * len(rows)
        partitions: dict[str, list[Row]] = {}
        for row, invocation in zip(rows, invoked, strict=True):
            full = {name: row.get(name) for name in FEATURE_NAMES}
            full.update(
                write_time=written, api_invocation_time=invocation, is_deleted=bool(row.get("is_deleted"))
            )
            hour = event_time(str(full[EVENT_TIME]))
            partition = f"year={hour:%Y}/month={hour:%m}/day={hour:%d}/hour={hour:%H}"
            partitions.setdefault(partition, []).append(full)
        with self._lock:
            for partition, partition_rows in partitions.items():
                folder = self.root / partition
                folder.mkdir(parents=True, exist_ok=True)
                name = f"{written:%Y%m%dT%H%M%S%fZ}_{uuid.uuid4().hex[:12]}.parquet"
                partial = folder / f".{name}.partial"
                pq.write_table(pa.Table.from_pylist(partition_rows, schema=SCHEMA), partial)
                partial.replace(folder / name)
        return len(rows)

    def put_record(self, record: Sequence[Mapping[str, Any]]) -> Row:
        row = parse_record(record)
        self.write([row])
        return row

    def delete_record(self, record_id: str, deleted_at: str | None = None) -> None:
        """Soft delete, the Feature Store's default: a row with ``is_deleted = true`` at ``deleted_at``.

        The event time must not be older than the record's, or the record would stay the latest one.
        """
        current = self.get_record(record_id)
        if current is None:
            raise FeatureStoreError(f"no record {RECORD_IDENTIFIER}={record_id!r} to delete")
        deleted_at = deleted_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if event_time(deleted_at) < event_time(current[EVENT_TIME]):
            raise FeatureStoreError(
                f"cannot delete {record_id!r} at {deleted_at}: its latest record is from {current[EVENT_TIME]}"
            )
        self.write([{RECORD_IDENTIFIER: record_id, EVENT_TIME: deleted_at, "is_deleted": True}])

    # --- reading
    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with the two views over the current files (new files need a new connection)."""
        connection = duckdb.connect()
        if any(self.root.rglob("*.parquet")):
            glob = str(self.root / "**" / "*.parquet").replace("'", "''")
            source = f"read_parquet('{glob}', union_by_name = true, filename = true, file_row_number = true)"
        else:
            columns = ", ".join(f"NULL::{_SQL_TYPES[f.type]} AS {f.name}" for f in FEATURE_DEFINITIONS)
            source = (
                f"(SELECT {columns}, NULL::TIMESTAMPTZ AS write_time, NULL::TIMESTAMPTZ AS api_invocation_time, "
                "NULL::BOOLEAN AS is_deleted, NULL::VARCHAR AS filename, NULL::BIGINT AS file_row_number "
                "WHERE false)"
            )
        columns = ", ".join([*FEATURE_NAMES, *EXTRA_COLUMNS])
        connection.execute(f"CREATE VIEW {HISTORY_VIEW}_files AS SELECT * FROM {source}")
        connection.execute(f"CREATE VIEW {HISTORY_VIEW} AS SELECT {columns} FROM {HISTORY_VIEW}_files")
        connection.execute(
            f"""
            CREATE VIEW {ONLINE_VIEW} AS
            SELECT {", ".join(FEATURE_NAMES)} FROM (
                SELECT *, row_number() OVER (
                    PARTITION BY {RECORD_IDENTIFIER}
                    ORDER BY TRY_CAST({EVENT_TIME} AS TIMESTAMPTZ) DESC, write_time DESC,
                             api_invocation_time DESC, filename DESC, file_row_number DESC
                ) AS position
                FROM {HISTORY_VIEW}_files
            )
            WHERE position = 1 AND NOT is_deleted
            """
        )
        return connection

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run SQL against the views; a bad query names the views and their columns."""
        connection = self.connect()
        try:
            relation = connection.sql(sql)
            if relation is None:
                return [], []
            return list(relation.columns), relation.fetchall()
        except duckdb.Error as error:
            raise _naming_the_views(error) from None
        finally:
            connection.close()

    def query_read_only(
        self,
        sql: str,
        max_rows: int,
        limits: QueryLimits = TYPED_QUERY_LIMITS,
        running: RunningQueries | None = None,
    ) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        """One ``SELECT`` (or ``EXPLAIN``) over the views, for SQL typed by someone other than the store's
        owner (the web page's box, ``pipelines features query``): the connection may read only the offline store's files and its settings
        are locked, so the query can neither write nor read elsewhere, nor use more than ``limits`` allow
        (time, memory, threads); ``running`` lets a stopping server interrupt it. Returns the columns, at
        most ``max_rows`` rows and whether more were left out."""
        try:
            parse_row_limit(max_rows)
        except ValueError as problem:
            raise FeatureStoreError(str(problem)) from None
        connection = self.connect()
        try:
            try:
                statements = connection.extract_statements(sql)
            except duckdb.Error as error:
                raise FeatureStoreError(str(error)) from None
            kinds = [statement.type for statement in statements]
            if len(kinds) != 1 or kinds[0] not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
                shown = ", ".join(kind.name for kind in kinds) or "nothing"
                raise FeatureStoreError(f"only one SELECT statement is allowed here; this is {shown}")
            folder = str(self.root).replace("'", "''")
            limits.apply(connection)
            connection.execute(f"SET allowed_directories = ['{folder}/']")
            connection.execute("SET enable_external_access = false")
            connection.execute("SET lock_configuration = true")
            with (running or RunningQueries()).watch(connection, limits):
                relation = connection.sql(sql)
                if relation is None:
                    return [], [], False
                rows = relation.limit(max_rows + 1).fetchall()
            return list(relation.columns), rows[:max_rows], len(rows) > max_rows
        except QueryStopped as stopped:
            raise FeatureStoreError(str(stopped)) from None
        except duckdb.OutOfMemoryException:
            raise FeatureStoreError(limits.memory_message()) from None
        except duckdb.Error as error:
            raise _naming_the_views(error) from None
        finally:
            connection.close()

    def get_record(self, record_id: str) -> Row | None:
        """The online lookup: the latest non-deleted record with this id, or None."""
        connection = self.connect()
        try:
            relation = connection.execute(
                f"SELECT * FROM {ONLINE_VIEW} WHERE {RECORD_IDENTIFIER} = ?", [record_id]
            )
            columns = [column[0] for column in relation.description]
            found = relation.fetchone()
        finally:
            connection.close()
        return None if found is None else {k: v for k, v in zip(columns, found, strict=True) if v is not None}
