"""The order state machine: committed events applied to each order's current status.

    created -> paid -> assigned -> picking -> packed -> shipped
    cancelled / refunded end the flow from any state

Events are read from the events table through a durable cursor (`stage_cursors`), so a
crash between commit and apply only delays the apply. An order only ever moves forward:
a status replaces one of lower rank, the end states take over from anything, and
refunded may follow cancelled (the money went back) but nothing follows refunded.
An event that moves nothing, such as a late `paid` after `cancelled`, is still written to
`order_transitions` with applied=0: it is evidence, not noise. Statuses that no platform
event carries (assigned, picking, packed) are set by the stages that decide them through
`advance`, with their cause.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from hub.dispatch import facts as order_facts
from hub.model import iso_utc, utcnow
from hub.store import orders_sql, queries
from hub.store.orders_sql import OrderKey

STAGE = "orders"
BATCH = 500

RANK = {
    "created": 10,
    "paid": 20,
    "assigned": 30,
    "picking": 40,
    "packed": 50,
    "shipped": 60,
    "cancelled": 100,
    "refunded": 110,
}
END = frozenset({"cancelled", "refunded"})
# event kinds that carry a status; the others (address change, refund request, ...)
# only bring facts
EVENT_STATUS = {"created", "paid", "shipped", "cancelled", "refunded"}


@dataclass
class Change:
    """What one applied event did to its order (the dispatch stage reads these)."""

    key: OrderKey
    event_id: int
    kind: str
    before: str | None
    after: str
    moved: bool
    amount: str | None
    facts: dict[str, Any] = field(default_factory=dict)


def may_move(current: str | None, new: str) -> bool:
    """True when `new` is a step forward from `current`."""
    if current is None:
        return True
    if current == "refunded" or current == new:
        return False
    if new in END:
        return True
    if current in END:
        return False
    return RANK[new] > RANK[current]


def apply_pending(conn: sqlite3.Connection, limit: int = BATCH) -> list[Change]:
    """Apply up to `limit` events past the cursor, in event order."""
    after = queries.cursor(conn, STAGE)
    events = orders_sql.events_after(conn, after, limit)
    now = iso_utc(utcnow())
    changes = [apply_event(conn, ev, now) for ev in events]
    if events:
        queries.set_cursor(conn, STAGE, events[-1]["id"])
    return changes


def apply_event(conn: sqlite3.Connection, ev: dict[str, Any], now: str) -> Change:
    key: OrderKey = (ev["platform"], ev["shop"], ev["order_id"])
    new_facts = order_facts.extract(ev["platform"], json.loads(ev["payload"] or "null"))
    status = ev["kind"] if ev["kind"] in EVENT_STATUS else None
    cause = f"event:{ev['platform_type']}"
    row = orders_sql.order_state(conn, key)
    before = row["status"] if row else None
    if row is None:
        after, moved = status or "created", True
        merged = new_facts
    else:
        moved = status is not None and may_move(before, status)
        after = status if moved and status else before
        merged = order_facts.merge(row["facts"], new_facts)
    # an event that is only evidence (a late `paid` after `cancelled`) changes nothing,
    # its amount included; one that moves the order, or carries no status, may update it
    evidence_only = status is not None and not moved
    orders_sql.save_order(
        conn,
        key,
        new=row is None,
        status=after,
        amount=None if evidence_only else ev["amount"],
        currency=None if evidence_only else ev["currency"],
        facts=merged,
        event_id=ev["id"],
        occurred_at=ev["occurred_at"],
        now=now,
    )
    if status is not None or row is None:
        note = None if moved else _why_not(before, status or after)
        if row is None and status is None:
            note = "first event carries no status"
        orders_sql.add_transition(
            conn,
            key,
            before=before,
            after=status or after,
            applied=moved,
            event_id=ev["id"],
            cause=cause,
            note=note,
            now=now,
        )
    fresh = ev["amount"] is not None and not evidence_only
    amount = ev["amount"] if fresh or row is None else row["amount"]
    return Change(key, ev["id"], ev["kind"], before, after, moved, amount, merged)


def advance(conn: sqlite3.Connection, key: OrderKey, status: str, cause: str) -> bool:
    """Move an order forward to a status a stage decided (assigned, picking, packed).

    Returns False (and records nothing) when the order is absent or already past it."""
    if status not in RANK:
        raise ValueError(f"unknown order status {status!r}")
    row = orders_sql.order_state(conn, key)
    if row is None or not may_move(row["status"], status):
        return False
    now = iso_utc(utcnow())
    orders_sql.set_status(conn, key, status, now)
    orders_sql.add_transition(
        conn,
        key,
        before=row["status"],
        after=status,
        applied=True,
        event_id=None,
        cause=cause,
        note=None,
        now=now,
    )
    return True


def _why_not(current: str | None, status: str) -> str:
    if current == status:
        return f"already {current} (repeated event)"
    if current in END:
        return f"order is {current}; kept as evidence, changes nothing"
    return f"arrived after {current} (out of order); does not move the order back"
