"""SQL of reconciliation: per-shop watermarks and the log of runs."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from hub.model import OrderEvent, iso_utc, parse_iso, utcnow


def watermark(conn: sqlite3.Connection, shop: str) -> datetime | None:
    row = conn.execute("SELECT watermark FROM reconcile_state WHERE shop = ?", (shop,)).fetchone()
    return parse_iso(row[0]) if row and row[0] else None


def start_run(
    conn: sqlite3.Connection,
    shop: str,
    platform: str,
    trigger: str,
    start: datetime,
    end: datetime,
) -> int:
    cur = conn.execute(
        "INSERT INTO reconcile_runs (shop, platform, trigger, window_start, window_end, "
        "started_at) VALUES (?,?,?,?,?,?)",
        (shop, platform, trigger, iso_utc(start), iso_utc(end), iso_utc(utcnow())),
    )
    return int(cur.lastrowid or 0)


def finish_run(
    conn: sqlite3.Connection,
    run_id: int,
    *,
    outcome: str,
    pages: int,
    stale_pages: int,
    events_seen: int,
    events_new: int,
    error_code: str | None = None,
    error: str | None = None,
) -> None:
    conn.execute(
        "UPDATE reconcile_runs SET finished_at = ?, outcome = ?, pages = ?, stale_pages = ?, "
        "events_seen = ?, events_new = ?, error_code = ?, error = ? WHERE id = ?",
        (
            iso_utc(utcnow()),
            outcome,
            pages,
            stale_pages,
            events_seen,
            events_new,
            error_code,
            error,
            run_id,
        ),
    )


def advance(
    conn: sqlite3.Connection, shop: str, platform: str, run_id: int, start: datetime, end: datetime
) -> bool:
    """Move the shop's watermark to `end` when [start, end) joins what was pulled before
    (a manual run for a later, detached window must not hide the gap before it)."""
    current = watermark(conn, shop)
    if current is not None and (start > current or end <= current):
        return False
    conn.execute(
        "INSERT INTO reconcile_state (shop, platform, watermark, last_run_id, updated_at) "
        "VALUES (?,?,?,?,?) ON CONFLICT(shop) DO UPDATE SET watermark = excluded.watermark, "
        "platform = excluded.platform, last_run_id = excluded.last_run_id, "
        "updated_at = excluded.updated_at",
        (shop, platform, iso_utc(end), run_id, iso_utc(utcnow())),
    )
    return True


def runs(
    conn: sqlite3.Connection, shop: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    where, args = ("WHERE shop = ?", (shop,)) if shop else ("", ())
    cur = conn.execute(
        f"SELECT * FROM reconcile_runs {where} ORDER BY id DESC LIMIT ?", (*args, limit)
    )
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def events_by_id(conn: sqlite3.Connection, event_ids: list[int]) -> list[dict[str, Any]]:
    """These events, by their ids. (Found by their requests' ids instead, a reconcile run
    read every event, inside its write turn: `events.request_id` has no index, and an
    index written by every push to serve one query a minute would cost more.)"""
    cur = conn.execute(
        "SELECT order_id, kind, occurred_at FROM events "
        "WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
        (json.dumps(event_ids),),
    )
    return [{"order_id": r[0], "kind": r[1], "occurred_at": r[2]} for r in cur.fetchall()]


def states(conn: sqlite3.Connection, shop: str | None = None) -> list[dict[str, Any]]:
    """Per shop (or only `shop`): the watermark, and `blocked` (None, or since when, why,
    how many tries and when the next one is) for a shop whose pulls need a person."""
    where, args = ("WHERE shop = ?", (shop,)) if shop else ("", ())
    cur = conn.execute(
        "SELECT shop, platform, watermark, last_run_id, updated_at, blocked_since, "
        "blocked_code, blocked_error, blocked_tries, next_try_at FROM reconcile_state "
        f"{where} ORDER BY shop",
        args,
    )
    out = []
    for shop, platform, mark, last_run_id, updated_at, *block in cur.fetchall():
        since, code, error, tries, next_try_at = block
        out.append(
            {
                "shop": shop,
                "platform": platform,
                "watermark": mark,
                "last_run_id": last_run_id,
                "updated_at": updated_at,
                "blocked": None
                if since is None
                else {
                    "since": since,
                    "code": code,
                    "error": error,
                    "tries": tries,
                    "next_try_at": next_try_at,
                },
            }
        )
    return out


def mark_blocked(conn: sqlite3.Connection, shop: str, platform: str, code: str, error: str) -> int:
    """Record a pull that failed in a way only a person can fix; returns how many tries
    in a row failed with this code (another code starts a new block). `next_try_at` is
    the hub's own schedule (`set_next_try`): a manual run in between leaves it."""
    conn.execute(
        "INSERT INTO reconcile_state (shop, platform, updated_at, blocked_since, blocked_code, "
        "blocked_error, blocked_tries) VALUES (?1, ?2, ?3, ?3, ?4, ?5, 1) "
        "ON CONFLICT(shop) DO UPDATE SET platform = excluded.platform, "
        "updated_at = excluded.updated_at, "
        "blocked_error = excluded.blocked_error, blocked_code = excluded.blocked_code, "
        # SET expressions read the row as it was: the same code continues the block
        "blocked_since = CASE WHEN blocked_code IS excluded.blocked_code "
        "THEN blocked_since ELSE excluded.blocked_since END, "
        "blocked_tries = CASE WHEN blocked_code IS excluded.blocked_code "
        "THEN blocked_tries + 1 ELSE 1 END",
        (shop, platform, iso_utc(utcnow()), code, error),
    )
    row = conn.execute("SELECT blocked_tries FROM reconcile_state WHERE shop = ?", (shop,))
    return int(row.fetchone()[0])


def set_next_try(conn: sqlite3.Connection, shop: str, at: datetime) -> None:
    conn.execute(
        "UPDATE reconcile_state SET next_try_at = ? WHERE shop = ? AND blocked_since IS NOT NULL",
        (iso_utc(at), shop),
    )


def clear_blocked(conn: sqlite3.Connection, shop: str) -> dict[str, Any] | None:
    """A live pull succeeded: the shop is no longer blocked. Returns the block it was
    in (since, code, tries), or None when it was not blocked."""
    row = conn.execute(
        "SELECT blocked_since, blocked_code, blocked_tries FROM reconcile_state "
        "WHERE shop = ? AND blocked_since IS NOT NULL",
        (shop,),
    ).fetchone()
    if row is None:
        return None
    conn.execute(
        "UPDATE reconcile_state SET blocked_since = NULL, blocked_code = NULL, "
        "blocked_error = NULL, blocked_tries = 0, next_try_at = NULL WHERE shop = ?",
        (shop,),
    )
    return {"since": row[0], "code": row[1], "tries": row[2]}


# transitions an order makes once: any event of that kind for the order means the
# pushes reported it, whatever time they gave it
ONCE_KINDS = frozenset({"created", "paid", "shipped", "cancelled", "refunded"})


def known_events(conn: sqlite3.Connection, events: list[OrderEvent]) -> set[int]:
    """Positions of the events the hub already has: the same dedupe key, or for a
    once-per-order transition, any event of that kind for the order (a push may carry
    the message's time where the poll carries the order's)."""
    known: set[int] = set()
    for index, event in enumerate(events):
        if event.kind.value in ONCE_KINDS:
            row = conn.execute(
                "SELECT 1 FROM events WHERE platform = ? AND shop = ? AND order_id = ? "
                "AND kind = ? LIMIT 1",
                (event.platform, event.shop, event.order_id, event.kind.value),
            ).fetchone()
        else:
            row = conn.execute(
                "SELECT 1 FROM events WHERE dedupe_key = ?", (event.dedupe_key,)
            ).fetchone()
        if row is not None:
            known.add(index)
    return known
