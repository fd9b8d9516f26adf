"""Reads and small writes outside the ingest path. Each takes a connection first, so it
runs in the writer (`store.write`), on a reader (`store.read`) or alone (`store.run`)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from hub.model import iso_utc, utcnow

# --- requests ------------------------------------------------------------------------

REQUEST_COLUMNS = (
    "id, received_at, channel, source, method, path, query, headers, body, body_truncated, "
    "peer, platform, shop, outcome, reason, detail, forensics, events_new, events_total, "
    "response_status, response_body, handling_ms"
)


def _request_row(cur: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    record = {col[0]: value for col, value in zip(cur.description, row, strict=True)}
    record["headers"] = [tuple(pair) for pair in json.loads(record["headers"])]
    return record


def get_request(conn: sqlite3.Connection, request_id: int) -> dict[str, Any] | None:
    cur = conn.execute(f"SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?", (request_id,))
    row = cur.fetchone()
    return _request_row(cur, row) if row else None


# A request is recorded within seconds of its arrival (the hub sheds what would wait
# longer than hub.shed_after_ms), so ids follow arrival times to well within this.
ARRIVAL_SLACK = timedelta(minutes=10)


def first_id_since(conn: sqlite3.Connection, since: datetime) -> int:
    """An id below every request received at or after `since`: where a walk by id over a
    recent window starts. Requests imported from recordings keep their old arrival times
    under new ids, so a window that spans an import may start late."""
    row = conn.execute(
        "SELECT id FROM requests WHERE received_at >= ? ORDER BY received_at LIMIT 1",
        (iso_utc(since - ARRIVAL_SLACK),),
    ).fetchone()
    if row is None:  # nothing since: past the last one
        row = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM requests").fetchone()
    return int(row[0])


def list_requests(
    conn: sqlite3.Connection,
    *,
    limit: int = 50,
    before_id: int | None = None,
    outcome: str | None = None,
    platform: str | None = None,
    shop: str | None = None,
) -> list[dict[str, Any]]:
    where: list[str] = ["1=1"]
    args: list[object] = []
    for column, value in (("outcome", outcome), ("platform", platform), ("shop", shop)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if before_id is not None:
        where.append("id < ?")
        args.append(before_id)
    cur = conn.execute(
        f"SELECT {REQUEST_COLUMNS} FROM requests WHERE {' AND '.join(where)} "
        "ORDER BY id DESC LIMIT ?",
        (*args, limit),
    )
    return [_request_row(cur, row) for row in cur.fetchall()]


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    out = {}
    for table in ("requests", "events", "orders"):
        out[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return out


def outcome_counts(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT outcome || coalesce(':' || reason, ''), count(*) FROM requests GROUP BY 1"
    ).fetchall()
    return {key: n for key, n in rows}


def events_for_order(
    conn: sqlite3.Connection, platform: str, shop: str, order_id: str
) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT id, request_id, kind, platform_type, occurred_at, amount, currency, source, "
        "message_id, dedupe_key, payload "
        "FROM events WHERE platform = ? AND shop = ? AND order_id = ? ORDER BY id",
        (platform, shop, order_id),
    )
    return [dict(zip([c[0] for c in cur.description], r, strict=True)) for r in cur.fetchall()]


def get_order(
    conn: sqlite3.Connection, platform: str, shop: str, order_id: str
) -> dict[str, Any] | None:
    cur = conn.execute(
        "SELECT * FROM orders WHERE platform = ? AND shop = ? AND order_id = ?",
        (platform, shop, order_id),
    )
    row = cur.fetchone()
    return dict(zip([c[0] for c in cur.description], row, strict=True)) if row else None


def prune_requests(conn: sqlite3.Connection, older_than: str, limit: int = 1000) -> int:
    """Retention: drop raw requests received before `older_than` (events stay), at most
    `limit` a call: run it by `Store.write_in_steps`, one short write turn at a time."""
    return conn.execute(
        "DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE received_at < ? LIMIT ?)",
        (older_than, limit),
    ).rowcount


# --- users and tokens --------------------------------------------------------------------


def create_user(conn: sqlite3.Connection, name: str, role: str) -> int:
    cur = conn.execute(
        "INSERT INTO users (name, role, created_at) VALUES (?, ?, ?)",
        (name, role, iso_utc(utcnow())),
    )
    return int(cur.lastrowid or 0)


def find_user(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT id, name, role, disabled FROM users WHERE name = ?", (name,)
    ).fetchone()
    return None if row is None else dict(zip(("id", "name", "role", "disabled"), row, strict=True))


def list_users(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT u.id, u.name, u.role, u.disabled, u.created_at, count(t.id) AS tokens "
        "FROM users u LEFT JOIN tokens t ON t.user_id = u.id AND t.revoked_at IS NULL "
        "GROUP BY u.id ORDER BY u.name"
    )
    return [dict(zip([c[0] for c in cur.description], r, strict=True)) for r in cur.fetchall()]


def add_token(conn: sqlite3.Connection, user_id: int, token_sha256: str, prefix: str) -> int:
    cur = conn.execute(
        "INSERT INTO tokens (user_id, token_sha256, prefix, created_at) VALUES (?, ?, ?, ?)",
        (user_id, token_sha256, prefix, iso_utc(utcnow())),
    )
    return int(cur.lastrowid or 0)


def revoke_tokens(conn: sqlite3.Connection, user_id: int) -> int:
    return conn.execute(
        "UPDATE tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        (iso_utc(utcnow()), user_id),
    ).rowcount


def token_owner(conn: sqlite3.Connection, token_sha256: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT u.id, u.name, u.role FROM tokens t JOIN users u ON u.id = t.user_id "
        "WHERE t.token_sha256 = ? AND t.revoked_at IS NULL AND u.disabled = 0",
        (token_sha256,),
    ).fetchone()
    return None if row is None else {"id": row[0], "name": row[1], "role": row[2]}


# --- post-commit stage cursors ---------------------------------------------------------


def cursor(conn: sqlite3.Connection, stage: str) -> int:
    row = conn.execute(
        "SELECT last_event_id FROM stage_cursors WHERE stage = ?", (stage,)
    ).fetchone()
    return int(row[0]) if row else 0


def set_cursor(conn: sqlite3.Connection, stage: str, last_event_id: int) -> None:
    conn.execute(
        "INSERT INTO stage_cursors (stage, last_event_id) VALUES (?, ?) "
        "ON CONFLICT(stage) DO UPDATE SET last_event_id = excluded.last_event_id",
        (stage, last_event_id),
    )


def events_after(conn: sqlite3.Connection, after_id: int, limit: int) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT id, platform, shop, order_id, kind, occurred_at, amount, currency "
        "FROM events WHERE id > ? ORDER BY id LIMIT ?",
        (after_id, limit),
    )
    return [dict(zip([c[0] for c in cur.description], r, strict=True)) for r in cur.fetchall()]
