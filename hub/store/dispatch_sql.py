"""SQL of dispatch: tasks, operators and their load, and the decision log."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

from hub.store.batch_sql import as_json, insert_many
from hub.store.orders_sql import ORDER_KEY_IN, OrderKey

OPEN_STATES = ("queued", "assigned", "claimed")
TASK_COLUMNS = (
    "id, platform, shop, order_id, grp, priority, rule, state, queue, assignee, created_at, "
    "waiting_since, assigned_at, claimed_at, escalated_at, released_by, closed_at, "
    "close_reason, updated_at"
)
TASK_NAMES = tuple(name.strip() for name in TASK_COLUMNS.split(","))
_task_values = itemgetter(*TASK_NAMES)


def _rows(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# --- decisions -----------------------------------------------------------------------


def log(conn: sqlite3.Connection, decision: str, now: str, **fields: Any) -> None:
    """One decision, written now (`fields` as `log_row` takes them)."""
    log_rows(conn, [log_row(decision, now, **fields)])


def log_row(
    decision: str,
    now: str,
    *,
    key: OrderKey | None = None,
    task_id: int | None = None,
    group: str | None = None,
    operator: str | None = None,
    rule: str | None = None,
    detail: str = "",
) -> tuple[Any, ...]:
    """One decision, to be written by `log_rows` (ids follow the order of the rows)."""
    return (now, decision, *(key or (None, None, None)), task_id, group, operator, rule, detail)


INSERT_LOG = """
INSERT INTO dispatch_log (at, decision, platform, shop, order_id, task_id, grp, operator,
    rule, detail)
VALUES """


def log_rows(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    insert_many(conn, INSERT_LOG, rows)


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
    log_rows(conn, [task_log_row(decision, now, task, detail=detail, operator=operator)])


def task_log_row(
    decision: str, now: str, task: dict[str, Any], *, detail: str, operator: Any = _HOLDER
) -> tuple[Any, ...]:
    return log_row(
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
    return tasks_for_orders(conn, [key]).get(key)


def tasks_for_orders(
    conn: sqlite3.Connection, keys: Iterable[OrderKey]
) -> dict[OrderKey, dict[str, Any]]:
    """The task of each of these orders that has one, in one query."""
    cur = conn.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE {ORDER_KEY_IN}", (as_json(keys),))
    return {(t["platform"], t["shop"], t["order_id"]): t for t in _rows(cur)}


def get_task(conn: sqlite3.Connection, task_id: int) -> dict[str, Any] | None:
    rows = _rows(conn.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)))
    return rows[0] if rows else None


def create_task(
    conn: sqlite3.Connection, key: OrderKey, group: str, priority: int, rule: str | None, now: str
) -> int:
    task = new_task(next_task_id(conn), key, group, priority, rule, now)
    insert_tasks(conn, [task])
    return int(task["id"])


def next_task_id(conn: sqlite3.Connection) -> int:
    """The id SQLite would give the next task: callers inside one write transaction
    number a batch of tasks themselves, so decisions can name them before the insert."""
    return int(conn.execute("SELECT coalesce(max(id), 0) + 1 FROM tasks").fetchone()[0])


def new_task(
    task_id: int, key: OrderKey, group: str, priority: int, rule: str | None, now: str
) -> dict[str, Any]:
    """A queued task as `insert_tasks` writes it (callers may close it before that)."""
    task: dict[str, Any] = dict.fromkeys(TASK_NAMES)
    platform, shop, order_id = key
    task.update(
        id=task_id,
        platform=platform,
        shop=shop,
        order_id=order_id,
        grp=group,
        priority=priority,
        rule=rule,
        state="queued",
        queue="group",
        created_at=now,
        waiting_since=now,
        updated_at=now,
    )
    return task


def insert_tasks(conn: sqlite3.Connection, tasks: Sequence[dict[str, Any]]) -> None:
    """Tasks from `new_task`, every column as the dict holds it."""
    insert_many(
        conn,
        f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ",
        [_task_values(task) for task in tasks],
    )


def queued_tasks(conn: sqlite3.Connection, group: str, limit: int) -> list[dict[str, Any]]:
    """The head of the group queue, in hand-out order: priority first, then oldest."""
    cur = conn.execute(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE state = 'queued' AND queue = 'group' "
        "AND grp = ? ORDER BY priority DESC, waiting_since, id LIMIT ?",
        (group, limit),
    )
    return _rows(cur)


def groups_with_queue(conn: sqlite3.Connection) -> list[str]:
    """The groups whose queue holds a task (hand-out asks this after every commit)."""
    rows = conn.execute(
        "SELECT grp FROM task_counts WHERE state = 'queued' AND queue = 'group' AND n > 0"
    ).fetchall()
    return [r[0] for r in rows]


def assign_tasks(conn: sqlite3.Connection, given: Iterable[tuple[int, str]], now: str) -> None:
    """(task id, operator) pairs: each task assigned to its operator."""
    conn.execute(
        "UPDATE tasks SET state = 'assigned', assignee = j.value ->> 1, assigned_at = ?, "
        "updated_at = ? FROM json_each(?) AS j WHERE tasks.id = j.value ->> 0",
        (now, now, as_json(given)),
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
    columns = ", ".join(f"t.{name}" for name in TASK_NAMES)
    # operators first (CROSS JOIN keeps that order): every hand-out asks this, and
    # without statistics SQLite would walk every assigned task to find the few held by
    # someone away; this way it reads the few operators and their tasks by index
    cur = conn.execute(
        f"SELECT {columns}, o.status AS operator_status, o.configured FROM operators o "
        "CROSS JOIN tasks t ON t.assignee = o.name AND t.state = 'assigned' "
        "WHERE o.status != 'working' OR o.configured = 0"
    )
    return _rows(cur)


def close_task(conn: sqlite3.Connection, task_id: int, state: str, reason: str, now: str) -> None:
    close_tasks(conn, [(task_id, state, reason)], now)


def close_tasks(
    conn: sqlite3.Connection, closing: Iterable[tuple[int, str, str]], now: str
) -> None:
    """(task id, final state, reason) for each task to close."""
    conn.execute(
        "UPDATE tasks SET state = j.value ->> 1, close_reason = j.value ->> 2, closed_at = ?, "
        "updated_at = ? FROM json_each(?) AS j WHERE tasks.id = j.value ->> 0",
        (now, now, as_json(closing)),
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
    # open work in the order it should be taken; closed tasks, which pile up all night,
    # newest first by a walk by id (`+state`: sorting all of them by priority through
    # tasks_queue took 89 ms at 480,000)
    open_work = bool(set(states) & set(OPEN_STATES))
    order = "priority DESC, waiting_since, id" if open_work else "id DESC"
    where = [f"{'' if open_work else '+'}state IN ({','.join('?' * len(states))})"]
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
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?",
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
    """The groups holding unclaimed tasks (the escalation scan looks for due ones there)."""
    rows = conn.execute(
        "SELECT DISTINCT grp FROM task_counts WHERE state IN ('queued', 'assigned') AND n > 0"
    ).fetchall()
    return [r[0] for r in rows]


def waiting_by_group(conn: sqlite3.Connection) -> list[tuple[str, str, int, str]]:
    """(group, queue, unclaimed tasks, oldest waiting_since) for the metrics and the board:
    the counts kept in task_counts, the oldest by one seek per group and queue."""
    rows = conn.execute(
        "SELECT c.grp, c.queue, sum(c.n), (SELECT min(waiting_since) FROM tasks "
        "INDEXED BY tasks_waiting WHERE state IN ('queued', 'assigned') "
        "AND grp = c.grp AND queue = c.queue) FROM task_counts c "
        "WHERE c.state IN ('queued', 'assigned') GROUP BY c.grp, c.queue HAVING sum(c.n) > 0"
    ).fetchall()
    return [(g, q, int(n), oldest) for g, q, n, oldest in rows]


def queue_length(conn: sqlite3.Connection, group: str) -> int:
    return int(
        conn.execute(
            "SELECT coalesce(sum(n), 0) FROM task_counts "
            "WHERE grp = ? AND state = 'queued' AND queue = 'group'",
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
        "coalesce(l.open, 0) AS open FROM operators o LEFT JOIN ("
        "SELECT assignee, sum(n) AS open FROM task_counts "
        "WHERE state IN ('assigned', 'claimed') GROUP BY assignee"
        ") l ON l.assignee = o.name WHERE o.configured = 1 ORDER BY o.name"
    )
    rows = _rows(cur)
    for row in rows:
        row["groups"] = json.loads(row["groups"])
    return rows


def get_operator(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    return next((o for o in operator_loads(conn) if o["name"] == name), None)


def last_assigned_seq(conn: sqlite3.Connection) -> int:
    """The round-robin clock: the highest sequence any operator was given a task at."""
    return int(
        conn.execute("SELECT coalesce(max(last_assigned_seq), 0) FROM operators").fetchone()[0]
    )


def set_assigned_seqs(conn: sqlite3.Connection, seqs: Iterable[tuple[str, int]]) -> None:
    """(operator, sequence of the last task it was given) pairs."""
    conn.execute(
        "UPDATE operators SET last_assigned_seq = j.value ->> 1 FROM json_each(?) AS j "
        "WHERE operators.name = j.value ->> 0",
        (as_json(seqs),),
    )


def set_operator_status(conn: sqlite3.Connection, name: str, status: str, now: str) -> None:
    conn.execute(
        "UPDATE operators SET status = ?, updated_at = ? WHERE name = ?", (status, now, name)
    )
