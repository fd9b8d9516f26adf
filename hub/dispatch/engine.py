"""The dispatch step that runs after commits (a pass at most every 50 ms): apply new
events to orders, turn orders that became workable into routed tasks, close tasks of
orders that ended, and hand out what the group queues hold. One write transaction, so
state, decisions and their notifications are durable together."""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable
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
    seconds: float = 0.0  # the work itself, inside the transaction (not waiting for it)


def process(conn: sqlite3.Connection, config: DispatchConfig, limit: int = orders.BATCH) -> Result:
    started = time.perf_counter()
    now = iso_utc(utcnow())
    result = Result()
    changes = orders.apply_pending(conn, limit)
    result.applied = len(changes)
    todo = [c for c in changes if c.moved and (_ends(c.after) or c.after in config.route_on)]
    if todo:
        desk = Desk(conn, config, now, [c.key for c in todo])
        for change in todo:
            if _ends(change.after):
                task_id = desk.close(change.key, f"order {change.after}")
                if task_id:
                    result.closed.append(task_id)
            else:
                task_id = desk.route(change.key, change.amount, change.facts)
                if task_id:
                    result.routed.append(task_id)
        desk.write()
    result.assigned = assign.hand_out(conn, config, now)
    result.seconds = time.perf_counter() - started
    return result


def _ends(status: str) -> bool:
    """No work left on the order: its task, if any, closes."""
    return status in orders.END or status == "shipped"


class Desk:
    """Routing and closing for one batch of order changes.

    The tasks of every order in the batch are read once; decisions are taken in change
    order over those rows (an order paid then cancelled in one batch gets its task and
    has it closed), and written at the end a chunk at a time: new tasks (numbered here,
    so their decisions can name them), closed ones, the orders' routes, the decision
    log in the order the decisions were taken."""

    def __init__(
        self, conn: sqlite3.Connection, config: DispatchConfig, now: str, keys: list[OrderKey]
    ) -> None:
        self.conn = conn
        self.config = config
        self.now = now
        self.tasks = dispatch_sql.tasks_for_orders(conn, dict.fromkeys(keys))
        self.next_id: int | None = None
        self.created: dict[int, dict] = {}
        self.closed: list[tuple[int, str, str]] = []
        self.routes: list[tuple[OrderKey, str, str | None]] = []
        # log rows, and notifications (which write their own rows) where they fall
        self.decisions: list[tuple | Callable[[], object]] = []

    def route(self, key: OrderKey, amount: str | None, facts: dict) -> int | None:
        """Create the order's task in the group its rules pick (once per order)."""
        if key in self.tasks:
            return None
        order = {"platform": key[0], "shop": key[1], "amount": amount, "facts": facts}
        chosen = rules.route(self.config, rules.order_facts(order))
        if self.next_id is None:
            self.next_id = dispatch_sql.next_task_id(self.conn)
        task_id, self.next_id = self.next_id, self.next_id + 1
        task = dispatch_sql.new_task(
            task_id, key, chosen.group, chosen.priority, chosen.rule, self.now
        )
        self.tasks[key] = self.created[task_id] = task
        self.routes.append((key, chosen.group, chosen.rule))
        why = (
            f"rule {chosen.rule!r} matched" if chosen.rule else "no rule matched: default group"
        ) + f" -> {chosen.group}, priority {chosen.priority}"
        self.decisions.append(dispatch_sql.task_log_row("routed", self.now, task, detail=why))
        threshold = self.config.group(chosen.group).high_value
        if threshold is not None and amount is not None and Decimal(amount) >= threshold:
            self.decisions.append(
                functools.partial(
                    notify.send,
                    self.conn,
                    self.config,
                    group=chosen.group,
                    severity="info",
                    title=f"High-value order {key[2]} ({amount})",
                    text=f"{key[0]}/{key[1]} order {key[2]}: {amount} >= {threshold}, "
                    f"routed to {chosen.group}",
                    dedupe=f"high_value:{':'.join(key)}",
                    now=self.now,
                    key=key,
                    task_id=task_id,
                )
            )
        return task_id

    def close(self, key: OrderKey, reason: str) -> int | None:
        task = self.tasks.get(key)
        if task is None or task["state"] not in dispatch_sql.OPEN_STATES:
            return None
        # shipped: the work got done (perhaps outside orderhook); otherwise there is none left
        state = "done" if reason.endswith("shipped") else "cancelled"
        self.decisions.append(
            dispatch_sql.task_log_row("closed", self.now, task, detail=f"task closed: {reason}")
        )
        task.update(state=state, close_reason=reason, closed_at=self.now, updated_at=self.now)
        if task["id"] not in self.created:  # a new one is inserted closed
            self.closed.append((task["id"], state, reason))
        return int(task["id"])

    def write(self) -> None:
        dispatch_sql.insert_tasks(self.conn, list(self.created.values()))
        if self.closed:
            dispatch_sql.close_tasks(self.conn, self.closed, self.now)
        if self.routes:
            orders_sql.set_routes(self.conn, self.routes)
        rows: list[tuple] = []
        for decision in self.decisions:
            if isinstance(decision, tuple):
                rows.append(decision)
                continue
            dispatch_sql.log_rows(self.conn, rows)
            rows = []
            decision()
        dispatch_sql.log_rows(self.conn, rows)
