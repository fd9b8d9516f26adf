"""Post-commit stage: apply committed events to each order's current state.

Runs after the ingest commit, never before an ack. Reads the events table from a
durable cursor, so a crash between commit and apply only delays the apply: on restart
the stage picks up where its cursor stopped. Out-of-order events never move an order
backwards: a status only replaces one of lower rank, and terminal states stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from hub.model import iso_utc, utcnow
from hub.store import queries

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("orderhook.orders")

STAGE = "orders"
BATCH = 500

# rank of the order status each event kind leads to; kinds not listed change no status
RANK = {"created": 10, "paid": 20, "shipped": 60, "cancelled": 100, "refunded": 100}
TERMINAL = 100


def apply_pending(conn: sqlite3.Connection, limit: int = BATCH) -> int:
    """Apply up to `limit` events past the cursor; returns how many were read."""
    after = queries.cursor(conn, STAGE)
    events = queries.events_after(conn, after, limit)
    now = iso_utc(utcnow())
    for ev in events:
        _apply(conn, ev, now)
    if events:
        queries.set_cursor(conn, STAGE, events[-1]["id"])
    return len(events)


def _apply(conn: sqlite3.Connection, ev: dict[str, Any], now: str) -> None:
    key = (ev["platform"], ev["shop"], ev["order_id"])
    row = conn.execute(
        "SELECT status FROM orders WHERE platform = ? AND shop = ? AND order_id = ?", key
    ).fetchone()
    new_status = ev["kind"] if ev["kind"] in RANK else None
    if row is None:
        conn.execute(
            "INSERT INTO orders (platform, shop, order_id, status, amount, currency, "
            "first_event_id, last_event_id, occurred_at, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                *key,
                new_status or "created",
                ev["amount"],
                ev["currency"],
                ev["id"],
                ev["id"],
                ev["occurred_at"],
                now,
                now,
            ),
        )
        return
    current = row[0]
    moves = (
        new_status is not None
        and RANK[new_status] > RANK.get(current, 0)
        and (RANK.get(current, 0) < TERMINAL)
    )
    conn.execute(
        "UPDATE orders SET status = ?, amount = coalesce(?, amount), "
        "currency = coalesce(?, currency), last_event_id = ?, "
        "occurred_at = max(occurred_at, ?), updated_at = ? "
        "WHERE platform = ? AND shop = ? AND order_id = ?",
        (
            new_status if moves else current,
            ev["amount"],
            ev["currency"],
            ev["id"],
            ev["occurred_at"],
            now,
            *key,
        ),
    )


async def run(hub: Hub) -> None:
    """Apply events as commits announce them (and every second, as a safety net)."""
    wake = asyncio.Event()
    hub.store.commit_listeners.append(lambda _max_id: wake.set())
    while True:
        try:
            while await hub.store.write(apply_pending) == BATCH:
                pass
        except Exception:
            log.exception("applying events to orders failed; retrying")
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=1.0)
