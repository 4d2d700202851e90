"""How the local mode's SQLite stores (the model registry, the review queue) open their file and write to it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def connect(path: Path) -> sqlite3.Connection:
    """The store's file, created with its folder if new: autocommit (transactions are explicit), rows by name,
    a minute's wait for another writer, write-ahead logging (readers do not block the writer), foreign keys
    enforced. Raises ``sqlite3.DatabaseError`` for a file that is not a sound SQLite database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=60, isolation_level=None)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA busy_timeout = 60000")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA foreign_keys = ON")
    check = connection.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        connection.close()
        raise sqlite3.DatabaseError(check)
    return connection


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` takes the write lock up front, so read-then-write cannot interleave."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
