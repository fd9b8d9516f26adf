"""What the live board shows, read in one go on a reader connection."""

from __future__ import annotations

import collections
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from hub.model import iso_utc, parse_iso
from hub.store import delivery_sql, dispatch_sql, queries

OPEN_ORDER_STATUSES = ("created", "paid", "assigned", "picking", "packed")


def _rows(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def snapshot(conn: sqlite3.Connection, now: datetime) -> dict[str, Any]:
    hour_ago = iso_utc(now - timedelta(hours=1))
    # from the counts kept by triggers (schema.m0013_order_counts), not the open orders
    stages = dict(conn.execute("SELECT status, n FROM order_counts").fetchall())
    # from the counts kept by triggers (schema.m0011_task_counts), not the open tasks
    backlog: dict[str, dict[str, Any]] = collections.defaultdict(
        lambda: {"queued": 0, "assigned": 0, "claimed": 0, "escalated": 0}
    )
    for group, stage, n in conn.execute(
        "SELECT grp, CASE WHEN state = 'claimed' THEN 'claimed' "
        "WHEN queue = 'supervisor' THEN 'escalated' ELSE state END, sum(n) "
        "FROM task_counts GROUP BY 1, 2 HAVING sum(n) > 0"
    ):
        backlog[group][stage] = n
    oldest: dict[str, str] = {}
    for group, _queue, _n, since in dispatch_sql.waiting_by_group(conn):
        oldest[group] = min(since, oldest.get(group, since))
    for group, since in oldest.items():
        backlog[group]["oldest_unclaimed_s"] = int((now - parse_iso(since)).total_seconds())
    escalations = _rows(
        conn.execute(
            "SELECT id, platform, shop, order_id, grp, escalated_at, waiting_since FROM tasks "
            "WHERE state IN ('queued', 'assigned') AND queue = 'supervisor' "
            "ORDER BY escalated_at DESC LIMIT 20"
        )
    )
    recent = _rows(
        conn.execute(
            "SELECT id, platform, shop, order_id, grp, priority, rule, state, queue, assignee, "
            "created_at FROM tasks ORDER BY id DESC LIMIT 12"
        )
    )
    rejected = dict(
        conn.execute(
            "SELECT coalesce(reason, '?'), count(*) FROM requests INDEXED BY requests_outcome "
            "WHERE outcome = 'rejected' AND id >= ? AND received_at >= ? "
            "GROUP BY 1 ORDER BY 2 DESC",
            (queries.first_id_since(conn, now - timedelta(hours=1)), hour_ago),
        ).fetchall()
    )
    dead = _rows(
        conn.execute(
            "SELECT id, kind, target, last_error, updated_at FROM outbox INDEXED BY outbox_dead "
            "WHERE state = 'dead' ORDER BY id DESC LIMIT 10"
        )
    )
    dead_total = delivery_sql.state_counts(conn).get("dead", 0)
    return {
        "at": iso_utc(now),
        "stages": {status: stages.get(status, 0) for status in OPEN_ORDER_STATUSES},
        "backlog": dict(backlog),
        "operators": dispatch_sql.operator_loads(conn),
        "escalations": escalations,
        "recent_tasks": recent,
        "rejected_last_hour": rejected,
        "dead_outbox": {"total": dead_total, "recent": dead},
        "decisions": dispatch_sql.decisions(conn, limit=12),
    }
