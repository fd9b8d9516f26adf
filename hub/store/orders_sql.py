"""SQL of the order state machine (hub/orders.py): orders, their transitions, the cursor."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from hub.store.batch_sql import as_json, insert_many

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


# the orders whose keys one JSON parameter lists: one indexed search per key
ORDER_KEY_IN = (
    "(platform, shop, order_id) IN (SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?))"
)


def order_state(conn: sqlite3.Connection, key: OrderKey) -> dict[str, Any] | None:
    return order_states(conn, [key]).get(key)


def order_states(conn: sqlite3.Connection, keys: Iterable[OrderKey]) -> dict[OrderKey, dict]:
    """The stored state of each of these orders (absent ones are left out), in one query."""
    cur = conn.execute(
        "SELECT platform, shop, order_id, status, amount, currency, facts, occurred_at, "
        f"route_group, route_rule FROM orders WHERE {ORDER_KEY_IN}",
        (as_json(keys),),
    )
    found = {}
    for row in _rows(cur):
        key = (row.pop("platform"), row.pop("shop"), row.pop("order_id"))
        row["facts"] = json.loads(row["facts"] or "{}")
        found[key] = row
    return found


def order_statuses(conn: sqlite3.Connection, keys: Iterable[OrderKey]) -> dict[OrderKey, str]:
    cur = conn.execute(
        f"SELECT platform, shop, order_id, status FROM orders WHERE {ORDER_KEY_IN}",
        (as_json(keys),),
    )
    return {(p, s, o): status for p, s, o, status in cur.fetchall()}


# a whole row per order touched by the batch: the stage computed its final state, so
# the columns an existing order keeps (first_event_id, created_at) are left alone
SAVE_ORDERS = """
INSERT INTO orders (platform, shop, order_id, status, amount, currency, facts,
    first_event_id, last_event_id, occurred_at, created_at, updated_at)
VALUES """
SAVE_ORDERS_TAIL = """
ON CONFLICT (platform, shop, order_id) DO UPDATE SET status = excluded.status,
    amount = excluded.amount, currency = excluded.currency, facts = excluded.facts,
    last_event_id = excluded.last_event_id, occurred_at = excluded.occurred_at,
    updated_at = excluded.updated_at"""


def order_row(
    key: OrderKey,
    *,
    status: str,
    amount: str | None,
    currency: str | None,
    facts: dict[str, Any],
    first_event_id: int,
    last_event_id: int,
    occurred_at: str,
    now: str,
) -> tuple[Any, ...]:
    return (
        *key,
        status,
        amount,
        currency,
        _json(facts),
        first_event_id,
        last_event_id,
        occurred_at,
        now,
        now,
    )


def save_orders(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert new orders and replace the state of known ones (rows from `order_row`)."""
    insert_many(conn, SAVE_ORDERS, rows, SAVE_ORDERS_TAIL)


def set_statuses(
    conn: sqlite3.Connection, statuses: Iterable[tuple[OrderKey, str]], now: str
) -> None:
    conn.execute(
        "UPDATE orders SET status = j.value ->> 3, updated_at = ? FROM json_each(?) AS j "
        "WHERE orders.platform = j.value ->> 0 AND orders.shop = j.value ->> 1 "
        "AND orders.order_id = j.value ->> 2",
        (now, as_json((*key, status) for key, status in statuses)),
    )


def set_routes(
    conn: sqlite3.Connection, routes: Iterable[tuple[OrderKey, str, str | None]]
) -> None:
    conn.execute(
        "UPDATE orders SET route_group = j.value ->> 3, route_rule = j.value ->> 4 "
        "FROM json_each(?) AS j WHERE orders.platform = j.value ->> 0 "
        "AND orders.shop = j.value ->> 1 AND orders.order_id = j.value ->> 2",
        (as_json((*key, group, rule) for key, group, rule in routes),),
    )


ADD_TRANSITIONS = """
INSERT INTO order_transitions (platform, shop, order_id, from_status, to_status, applied,
    event_id, cause, note, at)
VALUES """


def transition_row(
    key: OrderKey,
    *,
    before: str | None,
    after: str,
    applied: bool,
    event_id: int | None,
    cause: str,
    note: str | None,
    now: str,
) -> tuple[Any, ...]:
    return (*key, before, after, int(applied), event_id, cause, note, now)


def add_transitions(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Rows from `transition_row`, in order (their ids follow it)."""
    insert_many(conn, ADD_TRANSITIONS, rows)


def transitions(conn: sqlite3.Connection, key: OrderKey) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT id, from_status, to_status, applied, event_id, cause, note, at "
        "FROM order_transitions WHERE platform = ? AND shop = ? AND order_id = ? ORDER BY id",
        key,
    )
    return _rows(cur)


# the next (platform, shop) holding orders: seeks in the primary key
_FIRST_SHOP = "SELECT platform, shop FROM orders WHERE platform > ? ORDER BY platform, shop LIMIT 1"
_NEXT_SHOP = (
    "SELECT platform, shop FROM orders WHERE platform = ? AND shop > ? ORDER BY shop LIMIT 1"
)


def shops_with_orders(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every (platform, shop) that has orders, two seeks a shop in the primary key (a
    loose index scan): a merchant has a handful of shops and millions of orders.
    `(platform, shop) > (?, ?)` would seek on the platform only and walk its orders."""
    found: list[tuple[str, str]] = []
    row = conn.execute(_FIRST_SHOP, ("",)).fetchone()
    while row is not None:
        found.append(row)
        row = (
            conn.execute(_NEXT_SHOP, row).fetchone()
            or conn.execute(_FIRST_SHOP, row[:1]).fetchone()
        )
    return found


def find_orders(conn: sqlite3.Connection, order_id: str) -> list[dict[str, Any]]:
    """Every order with this platform order id (the same id may exist in two shops): a
    seek per shop. The primary key starts with the platform, so `WHERE order_id = ?`
    read every order (160 ms at a million), once per shipment an ERP reports by id."""
    cur = conn.execute(
        "SELECT o.platform, o.shop, o.order_id, status, amount, currency, facts, route_group, "
        "route_rule FROM json_each(?) AS j JOIN orders AS o ON o.platform = j.value ->> 0 "
        "AND o.shop = j.value ->> 1 AND o.order_id = ? ORDER BY o.platform, o.shop",
        (as_json(shops_with_orders(conn)), order_id),
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
