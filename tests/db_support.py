"""A migrated database for tests of the SQL itself, and a count of the SQLite VM steps a
read takes: how the tests tell a seek from a walk over a table that grows, without
timing anything."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from hub.store import schema


def migrated(
    path: Path | str = ":memory:", *, stop_before: str | None = None
) -> sqlite3.Connection:
    """A connection (autocommit) to a database migrated up to, not including, `stop_before`."""
    conn = sqlite3.connect(path, isolation_level=None)
    schema.migrations.apply(Database(conn), stop_before=stop_before)
    return conn


@dataclass
class Steps:
    every: int  # VM steps per tick
    ticks: int = 0


@contextlib.contextmanager
def vm_steps(conn: sqlite3.Connection, every: int) -> Iterator[Steps]:
    """Counts, in `ticks`, each `every` SQLite VM steps `conn` runs inside the block."""
    steps = Steps(every)

    def tick() -> int:
        steps.ticks += 1
        return 0  # go on

    conn.set_progress_handler(tick, every)
    try:
        yield steps
    finally:
        conn.set_progress_handler(None, 0)
