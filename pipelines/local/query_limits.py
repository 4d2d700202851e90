"""Limits on SQL typed by someone other than the store's owner (the web page's box), so that one query cannot
take the machine: a time limit, a memory cap and a thread cap per query, and a way to stop every running
query at once when the page's server stops.

DuckDB stops a running query when another thread calls ``connection.interrupt()``: the querying thread gets
``duckdb.InterruptException``. An interrupt sent before a query starts is lost, so :class:`RunningQueries`
also refuses queries once it has been stopped. Without a temporary directory DuckDB cannot spill to disk, so
the memory cap is a real cap (and nothing is written beside the page's working directory).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class QueryLimits:
    """What one query may use: ``seconds`` of wall-clock time, ``memory`` (a DuckDB size, e.g. ``"2GB"``)
    and ``threads``."""

    seconds: float = 10.0
    memory: str = "2GB"
    threads: int = 2

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.threads < 1:
            raise ValueError(f"query limits need seconds > 0 and threads >= 1, not {self}")

    def apply(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Set the caps on ``connection``; call before ``enable_external_access = false`` (which forbids
        changing the temporary directory) and ``lock_configuration`` (so the query cannot undo them)."""
        connection.execute("SET memory_limit = ?", [self.memory])
        connection.execute(f"SET threads = {int(self.threads)}")
        connection.execute("SET temp_directory = ''")

    def time_message(self) -> str:
        return f"the query ran past {self.seconds:g} s and was stopped; add a WHERE or LIMIT"

    def memory_message(self) -> str:
        return (
            f"the query needed more than {self.memory} of memory and was stopped; add a WHERE or LIMIT, "
            "or select fewer columns"
        )


TYPED_QUERY_LIMITS = QueryLimits()
"""What one query typed by a person may use, on the page's SQL box and ``pipelines features query`` alike."""
DEFAULT_ROWS = 50
MAX_ROWS = 10_000
"""Rows one typed query may return (the page's limit box, the CLI's ``--max-rows``)."""


def parse_row_limit(value: str | int) -> int:
    """``value`` as a row limit; ValueError naming the allowed range if it is none."""
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_ROWS:
        raise ValueError(f"the row limit must be a whole number from 1 to {MAX_ROWS}, not {value!r}")
    return limit


class QueryStopped(Exception):
    """The query was stopped: it ran past its time limit, or its server is stopping."""


class Watch:
    """One running query: its timer, and why it was interrupted (if it was)."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.connection = connection
        self.reason: str | None = None

    def interrupt(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.connection.interrupt()


class RunningQueries:
    """The queries running now, so that a stopping server can interrupt them rather than wait for them."""

    STOPPING = "the query was stopped: the page's server is stopping"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[Watch] = set()
        self._stopped = False

    @contextlib.contextmanager
    def watch(self, connection: duckdb.DuckDBPyConnection, limits: QueryLimits) -> Iterator[Watch]:
        """Run the body as one query on ``connection``, interrupted after ``limits.seconds`` or by
        :meth:`stop_all`. Raises :class:`QueryStopped` (with the reason) if the query was interrupted."""
        watch = Watch(connection)
        with self._lock:
            if self._stopped:
                raise QueryStopped(self.STOPPING)
            self._running.add(watch)
        timer = threading.Timer(limits.seconds, watch.interrupt, [limits.time_message()])
        timer.daemon = True
        timer.start()
        try:
            yield watch
        except duckdb.InterruptException:
            raise QueryStopped(watch.reason or "the query was interrupted") from None
        finally:
            timer.cancel()
            with self._lock:
                self._running.discard(watch)

    def running(self) -> int:
        """How many queries are running now."""
        with self._lock:
            return len(self._running)

    def stop_all(self) -> int:
        """Interrupt every running query and refuse new ones; returns how many were running."""
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for watch in running:
            watch.interrupt(self.STOPPING)
        return len(running)
