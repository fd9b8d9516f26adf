"""Opening the database: the same pragmas for every connection, in every process."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path


def connect(path: Path | str, *, durable: bool = True) -> sqlite3.Connection:
    """A connection with the hub's pragmas. `durable` (synchronous=FULL): each commit
    survives power loss, not just a process crash (an ack is a promise). Without it
    (NORMAL) a commit is not flushed to disk by itself but by the next durable commit
    of any connection (the WAL is one file, flushed up to its end) or the checkpoint:
    for work derived from stored events and redone from a cursor if power fails."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT; rolled back when the body or the commit raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have ended it
            conn.execute("ROLLBACK")
        raise
