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


def order_times(
    conn: sqlite3.Connection, platform: str, shop: str, order_ids: list[str]
) -> dict[str, tuple[str, str | None]]:
    """For each listed order that exists: (`orders.created_at`, `tasks.assigned_at`), the
    moment the order stage applied its first event and the moment dispatch assigned it
    (None while unassigned, or when this database has no dispatch tables)."""
    has_tasks = conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'tasks'"
    ).fetchone()
    assigned = "t.assigned_at" if has_tasks else "NULL"
    join = (
        "LEFT JOIN tasks AS t ON t.platform = o.platform AND t.shop = o.shop "
        "AND t.order_id = o.order_id "
        if has_tasks
        else ""
    )
    query = (
        f"SELECT o.order_id, o.created_at, {assigned} FROM orders AS o {join}"
        "WHERE o.platform = ? AND o.shop = ? AND o.order_id IN (SELECT value FROM json_each(?))"
    )
    out: dict[str, tuple[str, str | None]] = {}
    step = 5000
    for start in range(0, len(order_ids), step):
        chunk = json.dumps(order_ids[start : start + step])
        for order_id, created_at, assigned_at in conn.execute(query, (platform, shop, chunk)):
            out[order_id] = (created_at, assigned_at)
    return out
