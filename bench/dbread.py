"""Read the hub's database from the bench, beside a running hub (WAL: readers never
block its writer). The SQL itself lives in hub/store/stats_sql.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hub.store.writer import connect

T = TypeVar("T")


def read(db: Path, fn: Callable[..., T], *args: Any) -> T:
    conn = connect(db)
    try:
        conn.execute("PRAGMA query_only=1")
        return fn(conn, *args)
    finally:
        conn.close()


def file_bytes(db: Path) -> int:
    """The database with its WAL and shared-memory files, as they stand on disk."""
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())
