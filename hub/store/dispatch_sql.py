"""SQL of dispatch: tasks, operators and their load, and the decision log."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from hub.store.orders_sql import OrderKey

OPEN_STATES = ("queued", "assigned", "claimed")
TASK_COLUMNS = (
    "id, platform, shop, order_id, grp, priority, rule, state, queue, assignee, created_at, "
    "waiting_since, assigned_at, claimed_at, escalated_at, released_by, closed_at, "
    "close_reason, updated_at"
)


def _rows(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# --- decisions -----------------------------------------------------------------------


def log(
    conn: sqlite3.Connection,
    decision: str,
    now: str,
    *,
    key: OrderKey | None = None,
    task_id: int | None = None,
    group: str | None = None,
    operator: str | None = None,
    rule: str | None = None,
    detail: str = "",
) -> None:
    conn.execute(
        "INSERT INTO dispatch_log (at, decision, platform, shop, order_id, task_id, grp, "
        "operator, rule, detail) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (now, decision, *(key or (None, None, None)), task_id, group, operator, rule, detail),
    )


_HOLDER = object()


def log_task(
    conn: sqlite3.Connection,
    decision: str,
    now: str,
    task: dict[str, Any],
    *,
    detail: str,
    operator: Any = _HOLDER,
) -> None:
    """A decision about a task: order, group and rule come from the task row; the
    operator defaults to whoever holds it."""
    log(
        conn,
        decision,
        now,
        key=(task["platform"], task["shop"], task["order_id"]),
        task_id=task["id"],
        group=task["grp"],
        operator=task["assignee"] if operator is _HOLDER else operator,
        rule=task["rule"],
        detail=detail,
    )


def decisions(
    conn: sqlite3.Connection, *, key: OrderKey | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    where, args = ("platform = ? AND shop = ? AND order_id = ?", key) if key else ("1=1", ())
    cur = conn.execute(
        "SELECT id, at, decision, platform, shop, order_id, task_id, grp, operator, rule, "
        f"detail FROM dispatch_log WHERE {where} ORDER BY id DESC LIMIT ?",
        (*args, limit),
    )
    return _rows(cur)


# --- tasks ---------------------------------------------------------------------------


def task_for_order(conn: sqlite3.Connection, key: OrderKey) -> dict[str, Any] | None:
    cur = conn.execute(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE platform = ? AND shop = ? AND order_id = ?",
        key,
    )
    rows = _rows(cur)
    return rows[0] if rows else None


def get_task(conn: sqlite3.Connection, task_id: int) -> dict[str, Any] | None:
    rows = _rows(conn.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)))
    return rows[0] if rows else None


def create_task(
    conn: sqlite3.Connection, key: OrderKey, group: str, priority: int, rule: str | None, now: str
) -> int:
    cur = conn.execute(
        "INSERT INTO tasks (platform, shop, order_id, grp, priority, rule, state, created_at, "
        "waiting_since, updated_at) VALUES (?,?,?,?,?,?,'queued',?,?,?)",
        (*key, group, priority, rule, now, now, now),
    )
    return int(cur.lastrowid or 0)


def queued_tasks(conn: sqlite3.Connection, group: str, limit: int) -> list[dict[str, Any]]:
    """The head of the group queue, in hand-out order: priority first, then oldest."""
    cur = conn.execute(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE state = 'queued' AND queue = 'group' "
        "AND grp = ? ORDER BY priority DESC, waiting_since, id LIMIT ?",
        (group, limit),
    )
    return _rows(cur)


def groups_with_queue(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT grp FROM tasks WHERE state = 'queued' AND queue = 'group'"
    ).fetchall()
    return [r[0] for r in rows]


def assign_task(conn: sqlite3.Connection, task_id: int, operator: str, now: str) -> None:
    conn.execute(
        "UPDATE tasks SET state = 'assigned', assignee = ?, assigned_at = ?, updated_at = ? "
        "WHERE id = ?",
        (operator, now, now, task_id),
    )


def claim_task(conn: sqlite3.Connection, task_id: int, operator: str, now: str) -> None:
    conn.execute(
        "UPDATE tasks SET state = 'claimed', assignee = ?, "
        "assigned_at = coalesce(assigned_at, ?), claimed_at = ?, updated_at = ? WHERE id = ?",
        (operator, now, now, now, task_id),
    )


def requeue_task(
    conn: sqlite3.Connection,
    task_id: int,
    now: str,
    *,
    queue: str = "group",
    released_by: str | None = None,
    escalated: bool = False,
    keep_clock: bool = False,
) -> None:
    """Back to a queue, held by nobody. The escalation clock restarts unless the task is
    being escalated or merely withdrawn from someone who became unavailable."""
    keep = escalated or keep_clock
    conn.execute(
        "UPDATE tasks SET state = 'queued', queue = ?, assignee = NULL, claimed_at = NULL, "
        "waiting_since = CASE WHEN ? THEN waiting_since ELSE ? END, "
        "released_by = coalesce(?, released_by), "
        "escalated_at = CASE WHEN ? THEN ? ELSE escalated_at END, updated_at = ? WHERE id = ?",
        (queue, keep, now, released_by, escalated, now, now, task_id),
    )


def held_by_unavailable(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Assigned, unclaimed tasks whose operator is away, off or no longer configured."""
    columns = ", ".join(f"t.{c.strip()}" for c in TASK_COLUMNS.split(","))
    cur = conn.execute(
        f"SELECT {columns}, o.status AS operator_status, o.configured FROM tasks t "
        "JOIN operators o ON o.name = t.assignee "
        "WHERE t.state = 'assigned' AND (o.status != 'working' OR o.configured = 0)"
    )
    return _rows(cur)


def close_task(conn: sqlite3.Connection, task_id: int, state: str, reason: str, now: str) -> None:
    conn.execute(
        "UPDATE tasks SET state = ?, close_reason = ?, closed_at = ?, updated_at = ? WHERE id = ?",
        (state, reason, now, now, task_id),
    )


def list_tasks(
    conn: sqlite3.Connection,
    *,
    states: Iterable[str] = OPEN_STATES,
    groups: Iterable[str] | None = None,
    assignee: str | None = None,
    queue: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    states = tuple(states)
    where = [f"state IN ({','.join('?' * len(states))})"]
    args: list[Any] = list(states)
    if groups is not None:
        group_list = tuple(groups)
        where.append(f"grp IN ({','.join('?' * len(group_list))})")
        args.extend(group_list)
    if assignee is not None:
        where.append("assignee = ?")
        args.append(assignee)
    if queue is not None:
        where.append("queue = ?")
        args.append(queue)
    cur = conn.execute(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE {' AND '.join(where)} "
        "ORDER BY priority DESC, waiting_since, id LIMIT ?",
        (*args, limit),
    )
    return _rows(cur)


def due_for_escalation(conn: sqlite3.Connection, group: str, cutoff: str) -> list[dict]:
    """Open tasks nobody claimed since `cutoff` that are not escalated yet."""
    cur = conn.execute(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE grp = ? AND state IN ('queued', 'assigned') "
        "AND escalated_at IS NULL AND waiting_since <= ? ORDER BY waiting_since",
        (group, cutoff),
    )
    return _rows(cur)


def open_task_groups(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT grp FROM tasks WHERE state IN ('queued', 'assigned') "
        "AND escalated_at IS NULL"
    ).fetchall()
    return [r[0] for r in rows]


def waiting_by_group(conn: sqlite3.Connection) -> list[tuple[str, str, int, str]]:
    """(group, queue, unclaimed tasks, oldest waiting_since) for the metrics."""
    rows = conn.execute(
        "SELECT grp, queue, count(*), min(waiting_since) FROM tasks "
        "WHERE state IN ('queued', 'assigned') GROUP BY grp, queue"
    ).fetchall()
    return [(g, q, int(n), oldest) for g, q, n, oldest in rows]


def queue_length(conn: sqlite3.Connection, group: str) -> int:
    return int(
        conn.execute(
            "SELECT count(*) FROM tasks WHERE grp = ? AND state = 'queued' AND queue = 'group'",
            (group,),
        ).fetchone()[0]
    )


# --- operators -----------------------------------------------------------------------


def sync_operators(
    conn: sqlite3.Connection, operators: Iterable[tuple[str, list[str], int, str]], now: str
) -> None:
    """Make the table match the config: new operators take their configured status,
    known ones keep the live status they set; ones no longer configured go off."""
    names = []
    for name, groups, capacity, status in operators:
        names.append(name)
        conn.execute(
            "INSERT INTO operators (name, groups, capacity, status, configured, updated_at) "
            "VALUES (?,?,?,?,1,?) ON CONFLICT(name) DO UPDATE SET groups = excluded.groups, "
            "capacity = excluded.capacity, configured = 1, "
            "status = CASE WHEN operators.configured = 0 THEN excluded.status "
            "ELSE operators.status END, updated_at = excluded.updated_at",
            (name, json.dumps(groups), capacity, status, now),
        )
    conn.execute(
        f"UPDATE operators SET configured = 0, status = 'off', updated_at = ? "
        f"WHERE configured = 1 AND name NOT IN ({','.join('?' * len(names))})",
        (now, *names),
    )


def operator_loads(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every configured operator with its open-task count (assigned + claimed)."""
    cur = conn.execute(
        "SELECT o.name, o.groups, o.capacity, o.status, o.last_assigned_seq, "
        "count(t.id) AS open FROM operators o LEFT JOIN tasks t ON t.assignee = o.name "
        "AND t.state IN ('assigned', 'claimed') WHERE o.configured = 1 "
        "GROUP BY o.name ORDER BY o.name"
    )
    rows = _rows(cur)
    for row in rows:
        row["groups"] = json.loads(row["groups"])
    return rows


def get_operator(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    return next((o for o in operator_loads(conn) if o["name"] == name), None)


def mark_assigned(conn: sqlite3.Connection, name: str) -> None:
    conn.execute(
        "UPDATE operators SET last_assigned_seq = "
        "(SELECT coalesce(max(last_assigned_seq), 0) + 1 FROM operators) WHERE name = ?",
        (name,),
    )


def set_operator_status(conn: sqlite3.Connection, name: str, status: str, now: str) -> None:
    conn.execute(
        "UPDATE operators SET status = ?, updated_at = ? WHERE name = ?", (status, now, name)
    )
