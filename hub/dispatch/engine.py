"""The dispatch step that runs right after each commit: apply new events to orders, turn
orders that became workable into routed tasks, close tasks of orders that ended, and
hand out what the group queues hold. One write transaction, so state, decisions and
their notifications are durable together."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal

from hub import orders
from hub.dispatch import assign, notify, rules
from hub.dispatch.assign import Assignment
from hub.dispatch.config import DispatchConfig
from hub.model import iso_utc, utcnow
from hub.store import dispatch_sql, orders_sql
from hub.store.orders_sql import OrderKey


@dataclass
class Result:
    applied: int = 0
    routed: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    assigned: list[Assignment] = field(default_factory=list)


def process(conn: sqlite3.Connection, config: DispatchConfig, limit: int = orders.BATCH) -> Result:
    now = iso_utc(utcnow())
    result = Result()
    changes = orders.apply_pending(conn, limit)
    result.applied = len(changes)
    for change in changes:
        if not change.moved:
            continue
        if change.after in orders.END or change.after == "shipped":
            task_id = close_for_order(conn, change.key, f"order {change.after}", now)
            if task_id:
                result.closed.append(task_id)
        elif change.after in config.route_on:
            task_id = route_order(conn, config, change.key, change.amount, change.facts, now)
            if task_id:
                result.routed.append(task_id)
    result.assigned = assign.hand_out(conn, config, now)
    return result


def route_order(
    conn: sqlite3.Connection,
    config: DispatchConfig,
    key: OrderKey,
    amount: str | None,
    facts: dict,
    now: str,
) -> int | None:
    """Create the order's task in the group its rules pick (once per order)."""
    if dispatch_sql.task_for_order(conn, key) is not None:
        return None
    order = {"platform": key[0], "shop": key[1], "amount": amount, "facts": facts}
    chosen = rules.route(config, rules.order_facts(order))
    task_id = dispatch_sql.create_task(conn, key, chosen.group, chosen.priority, chosen.rule, now)
    orders_sql.set_route(conn, key, chosen.group, chosen.rule)
    why = (
        f"rule {chosen.rule!r} matched" if chosen.rule else "no rule matched: default group"
    ) + f" -> {chosen.group}, priority {chosen.priority}"
    dispatch_sql.log(
        conn,
        "routed",
        now,
        key=key,
        task_id=task_id,
        group=chosen.group,
        rule=chosen.rule,
        detail=why,
    )
    threshold = config.group(chosen.group).high_value
    if threshold is not None and amount is not None and Decimal(amount) >= threshold:
        notify.send(
            conn,
            config,
            group=chosen.group,
            severity="info",
            title=f"High-value order {key[2]} ({amount})",
            text=f"{key[0]}/{key[1]} order {key[2]}: {amount} >= {threshold}, "
            f"routed to {chosen.group}",
            dedupe=f"high_value:{':'.join(key)}",
            now=now,
            key=key,
            task_id=task_id,
        )
    return task_id


def close_for_order(conn: sqlite3.Connection, key: OrderKey, reason: str, now: str) -> int | None:
    task = dispatch_sql.task_for_order(conn, key)
    if task is None or task["state"] not in dispatch_sql.OPEN_STATES:
        return None
    # shipped: the work got done (perhaps outside orderhook); otherwise there is none left
    state = "done" if reason.endswith("shipped") else "cancelled"
    dispatch_sql.close_task(conn, task["id"], state, reason, now)
    dispatch_sql.log_task(conn, "closed", now, task, detail=f"task closed: {reason}")
    return int(task["id"])
