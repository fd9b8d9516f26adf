"""SQL of the order state machine (hub/orders.py): orders, their transitions, the cursor."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

OrderKey = tuple[str, str, str]  # platform, shop, order_id


def _rows(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def events_after(conn: sqlite3.Connection, after_id: int, limit: int) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT id, platform, shop, order_id, kind, platform_type, occurred_at, amount, "
        "currency, payload FROM events WHERE id > ? ORDER BY id LIMIT ?",
        (after_id, limit),
    )
    return _rows(cur)


def order_state(conn: sqlite3.Connection, key: OrderKey) -> dict[str, Any] | None:
    cur = conn.execute(
        "SELECT status, amount, currency, facts, route_group, route_rule FROM orders "
        "WHERE platform = ? AND shop = ? AND order_id = ?",
        key,
    )
    rows = _rows(cur)
    if not rows:
        return None
    row = rows[0]
    row["facts"] = json.loads(row["facts"] or "{}")
    return row


def save_order(
    conn: sqlite3.Connection,
    key: OrderKey,
    *,
    new: bool,
    status: str,
    amount: str | None,
    currency: str | None,
    facts: dict[str, Any],
    event_id: int,
    occurred_at: str,
    now: str,
) -> None:
    """Insert the order (`new`) or fold one more event into it."""
    if new:
        conn.execute(
            "INSERT INTO orders (platform, shop, order_id, status, amount, currency, facts, "
            "first_event_id, last_event_id, occurred_at, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                *key,
                status,
                amount,
                currency,
                _json(facts),
                event_id,
                event_id,
                occurred_at,
                now,
                now,
            ),
        )
        return
    conn.execute(
        "UPDATE orders SET status = ?, amount = coalesce(?, amount), "
        "currency = coalesce(?, currency), facts = ?, last_event_id = ?, "
        "occurred_at = max(occurred_at, ?), updated_at = ? "
        "WHERE platform = ? AND shop = ? AND order_id = ?",
        (status, amount, currency, _json(facts), event_id, occurred_at, now, *key),
    )


def set_status(conn: sqlite3.Connection, key: OrderKey, status: str, now: str) -> None:
    conn.execute(
        "UPDATE orders SET status = ?, updated_at = ? "
        "WHERE platform = ? AND shop = ? AND order_id = ?",
        (status, now, *key),
    )


def set_route(conn: sqlite3.Connection, key: OrderKey, group: str, rule: str | None) -> None:
    conn.execute(
        "UPDATE orders SET route_group = ?, route_rule = ? "
        "WHERE platform = ? AND shop = ? AND order_id = ?",
        (group, rule, *key),
    )


def add_transition(
    conn: sqlite3.Connection,
    key: OrderKey,
    *,
    before: str | None,
    after: str,
    applied: bool,
    event_id: int | None,
    cause: str,
    note: str | None,
    now: str,
) -> None:
    conn.execute(
        "INSERT INTO order_transitions (platform, shop, order_id, from_status, to_status, "
        "applied, event_id, cause, note, at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (*key, before, after, int(applied), event_id, cause, note, now),
    )


def transitions(conn: sqlite3.Connection, key: OrderKey) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT id, from_status, to_status, applied, event_id, cause, note, at "
        "FROM order_transitions WHERE platform = ? AND shop = ? AND order_id = ? ORDER BY id",
        key,
    )
    return _rows(cur)


def find_orders(conn: sqlite3.Connection, order_id: str) -> list[dict[str, Any]]:
    """Every order with this platform order id (the same id may exist in two shops)."""
    cur = conn.execute(
        "SELECT platform, shop, order_id, status, amount, currency, facts, route_group, "
        "route_rule FROM orders WHERE order_id = ? ORDER BY platform, shop",
        (order_id,),
    )
    return [_with_facts(row) for row in _rows(cur)]


def all_orders(conn: sqlite3.Connection, *, after: OrderKey | None, limit: int) -> list[dict]:
    """Orders in key order, a page at a time (for dry runs over the whole table)."""
    cur = conn.execute(
        "SELECT platform, shop, order_id, status, amount, currency, facts, route_group, "
        "route_rule FROM orders WHERE (platform, shop, order_id) > (?, ?, ?) "
        "ORDER BY platform, shop, order_id LIMIT ?",
        (*(after or ("", "", "")), limit),
    )
    return [_with_facts(row) for row in _rows(cur)]


def count_orders(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM orders").fetchone()[0])


def _with_facts(row: dict[str, Any]) -> dict[str, Any]:
    row["facts"] = json.loads(row["facts"] or "{}")
    return row


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
