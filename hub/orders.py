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
    """Apply up to `limit` events past the cursor, in event order.

    The batch is worked in memory: one lookup of every order it touches, the state
    machine run event by event over those rows (so the second event of an order sees
    what the first made of it), then one row per order and one per transition written
    a chunk at a time. All of it is inside the caller's transaction: a failure anywhere
    leaves no event half applied and the cursor where it was."""
    after = queries.cursor(conn, STAGE)
    events = orders_sql.events_after(conn, after, limit)
    if not events:
        return []
    keys = dict.fromkeys((ev["platform"], ev["shop"], ev["order_id"]) for ev in events)
    batch = _Batch(orders_sql.order_states(conn, keys), iso_utc(utcnow()))
    changes = [batch.apply(ev) for ev in events]
    batch.write(conn)
    queries.set_cursor(conn, STAGE, events[-1]["id"])
    return changes


class _Batch:
    """The orders one batch touches, as its events have left them so far."""

    def __init__(self, stored: dict[OrderKey, dict[str, Any]], now: str) -> None:
        self.orders = stored
        self.now = now
        self.first_event: dict[OrderKey, int] = {}  # orders this batch creates
        self.touched: dict[OrderKey, int] = {}  # key -> its last event in the batch
        self.transitions: list[tuple[Any, ...]] = []

    def apply(self, ev: dict[str, Any]) -> Change:
        key: OrderKey = (ev["platform"], ev["shop"], ev["order_id"])
        new_facts = order_facts.from_payload(ev["platform"], ev["payload"])
        status = ev["kind"] if ev["kind"] in EVENT_STATUS else None
        row = self.orders.get(key)
        before = row["status"] if row else None
        if row is None:
            after, moved = status or "created", True
            row = self.orders[key] = {
                "status": after,
                "amount": ev["amount"],
                "currency": ev["currency"],
                "facts": new_facts,
                "occurred_at": ev["occurred_at"],
            }
            self.first_event[key] = ev["id"]
        else:
            moved = status is not None and may_move(before, status)
            after = status if moved and status else before
            # an event that is only evidence (a late `paid` after `cancelled`) changes
            # nothing, its amount included; one that moves the order, or carries no
            # status, may update it
            if status is None or moved:
                row["amount"] = ev["amount"] if ev["amount"] is not None else row["amount"]
                row["currency"] = ev["currency"] if ev["currency"] is not None else row["currency"]
            row["status"] = after
            row["facts"] = order_facts.merge(row["facts"], new_facts)
            row["occurred_at"] = max(row["occurred_at"], ev["occurred_at"])
        self.touched[key] = ev["id"]
        if status is not None or before is None:
            note = None if moved else _why_not(before, status or after)
            if before is None and status is None:
                note = "first event carries no status"
            self.transitions.append(
                orders_sql.transition_row(
                    key,
                    before=before,
                    after=status or after,
                    applied=moved,
                    event_id=ev["id"],
                    cause=f"event:{ev['platform_type']}",
                    note=note,
                    now=self.now,
                )
            )
        return Change(key, ev["id"], ev["kind"], before, after, moved, row["amount"], row["facts"])

    def write(self, conn: sqlite3.Connection) -> None:
        rows = []
        for key, last_event_id in self.touched.items():
            row = self.orders[key]
            rows.append(
                orders_sql.order_row(
                    key,
                    status=row["status"],
                    amount=row["amount"],
                    currency=row["currency"],
                    facts=row["facts"],
                    first_event_id=self.first_event.get(key, last_event_id),
                    last_event_id=last_event_id,
                    occurred_at=row["occurred_at"],
                    now=self.now,
                )
            )
        orders_sql.save_orders(conn, rows)
        orders_sql.add_transitions(conn, self.transitions)


def advance(conn: sqlite3.Connection, key: OrderKey, status: str, cause: str) -> bool:
    """Move an order forward to a status a stage decided (assigned, picking, packed).

    Returns False (and records nothing) when the order is absent or already past it."""
    return advance_many(conn, [(key, status, cause)], iso_utc(utcnow()))[0]


def advance_many(
    conn: sqlite3.Connection, moves: list[tuple[OrderKey, str, str]], now: str
) -> list[bool]:
    """`advance` for many (key, status, cause), in order, with one lookup and two writes."""
    for _key, status, _cause in moves:
        if status not in RANK:
            raise ValueError(f"unknown order status {status!r}")
    if not moves:
        return []
    current = orders_sql.order_statuses(conn, dict.fromkeys(key for key, _s, _c in moves))
    changed: dict[OrderKey, str] = {}
    transitions = []
    done = []
    for key, status, cause in moves:
        before = current.get(key)
        if before is None or not may_move(before, status):
            done.append(False)
            continue
        current[key] = changed[key] = status
        transitions.append(
            orders_sql.transition_row(
                key,
                before=before,
                after=status,
                applied=True,
                event_id=None,
                cause=cause,
                note=None,
                now=now,
            )
        )
        done.append(True)
    if changed:
        orders_sql.set_statuses(conn, changed.items(), now)
        orders_sql.add_transitions(conn, transitions)
    return done


def _why_not(current: str | None, status: str) -> str:
    if current == status:
        return f"already {current} (repeated event)"
    if current in END:
        return f"order is {current}; kept as evidence, changes nothing"
    return f"arrived after {current} (out of order); does not move the order back"
