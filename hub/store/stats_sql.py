"""Reads that measure the store itself: how many requests got which answer, where the
bytes go (per table and per index), and when each order was last touched. Used by
`bench/` to check durability and storage; cheap enough for an operator to run too."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Btree:
    """One table or index as stored: its pages and the bytes they hold."""

    name: str
    table: str  # the table an index belongs to (itself for a table)
    pages: int
    bytes: int  # page bytes, free space included: what the file pays for it
    payload: int  # bytes of row data in it


def status_counts(conn: sqlite3.Connection) -> dict[int, int]:
    """Recorded requests by the HTTP status the hub answered."""
    rows = conn.execute(
        "SELECT response_status, count(*) FROM requests GROUP BY response_status"
    ).fetchall()
    return {int(status): int(n) for status, n in rows}


def ingest_totals(conn: sqlite3.Connection) -> dict[str, int]:
    """Requests, events and the events the requests say they created (they must agree)."""
    requests, events_new = conn.execute(
        "SELECT count(*), coalesce(sum(events_new), 0) FROM requests"
    ).fetchone()
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    return {"requests": int(requests), "events": int(events), "events_new": int(events_new)}


def body_bytes(conn: sqlite3.Connection) -> dict[str, int]:
    """Raw bytes the requests carried (body and headers as stored)."""
    body, headers = conn.execute(
        "SELECT coalesce(sum(length(body)), 0), coalesce(sum(length(headers)), 0) FROM requests"
    ).fetchone()
    return {"body": int(body), "headers": int(headers)}


def btrees(conn: sqlite3.Connection) -> list[Btree]:
    """Every table and index with its page count (the dbstat virtual table); empty when
    SQLite was built without it (SQLITE_ENABLE_DBSTAT_VTAB)."""
    try:
        rows = conn.execute(
            "SELECT d.name, coalesce(m.tbl_name, d.name), count(*), sum(d.pgsize), "
            "sum(d.payload) FROM dbstat AS d LEFT JOIN sqlite_schema AS m ON m.name = d.name "
            "GROUP BY d.name ORDER BY sum(d.pgsize) DESC"
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    return [Btree(name, table, int(p), int(b), int(pl)) for name, table, p, b, pl in rows]


def order_touch_column(conn: sqlite3.Connection) -> str:
    """`assigned_at` once dispatch records assignments on orders, else `updated_at`."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(orders)")}
    return "assigned_at" if "assigned_at" in columns else "updated_at"


def order_times(
    conn: sqlite3.Connection, platform: str, shop: str, order_ids: list[str], column: str
) -> dict[str, str | None]:
    """`column` (from `order_touch_column`) of each listed order that exists."""
    if column not in ("assigned_at", "updated_at"):
        raise ValueError(f"not an order time column: {column!r}")
    out: dict[str, str | None] = {}
    query = (
        f"SELECT order_id, {column} FROM orders "
        "WHERE platform = ? AND shop = ? AND order_id IN (SELECT value FROM json_each(?))"
    )
    step = 5000
    for start in range(0, len(order_ids), step):
        chunk = order_ids[start : start + step]
        for order_id, value in conn.execute(query, (platform, shop, json.dumps(chunk))):
            out[order_id] = value
    return out
