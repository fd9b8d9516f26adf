"""Assignment by live load: inside a group, the available operator with the fewest open
tasks gets the next task; among equals, the one who got a task longest ago (round
robin). Nobody goes above capacity; what nobody can take waits in the group queue and
is handed out here again whenever capacity frees up (a completion, a release, an
operator coming back, a config change).

Every function runs inside the caller's write transaction, so the assignment, the
order's move to `assigned` and the decision row commit together.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from hub import orders
from hub.dispatch.config import DispatchConfig
from hub.store import dispatch_sql


@dataclass(frozen=True)
class Assignment:
    task_id: int
    operator: str
    group: str
    why: str


def available(op: dict[str, Any], group: str) -> bool:
    return group in op["groups"] and op["status"] == "working" and op["open"] < op["capacity"]


def pick(loads: list[dict[str, Any]], group: str, skip: str | None = None) -> dict | None:
    candidates = [op for op in loads if available(op, group) and op["name"] != skip]
    if not candidates:
        return None
    return min(candidates, key=lambda op: (op["open"], op["last_assigned_seq"], op["name"]))


def describe_group(loads: list[dict[str, Any]], group: str) -> str:
    """`ana 1/5, bo 5/5 full, cy away` for decision rows and the board."""
    parts = []
    for op in loads:
        if group not in op["groups"]:
            continue
        state = f"{op['name']} {op['open']}/{op['capacity']}"
        if op["status"] != "working":
            state = f"{op['name']} {op['status']}"
        elif op["open"] >= op["capacity"]:
            state += " full"
        parts.append(state)
    return ", ".join(parts) or "no operators in this group"


def hand_out(conn: sqlite3.Connection, config: DispatchConfig, now: str) -> list[Assignment]:
    """Give queued tasks to available operators until the queues or capacity run out.

    Loads are read once and kept current in memory as tasks are given (open count and
    round-robin sequence, exactly as the table will hold them); the assignments are
    written together at the end."""
    withdraw_unavailable(conn, now)
    groups = sorted(dispatch_sql.groups_with_queue(conn))
    if not groups:
        return []
    loads = dispatch_sql.operator_loads(conn)
    seq = dispatch_sql.last_assigned_seq(conn)
    given: list[tuple[dict[str, Any], str, str, int]] = []
    done: list[Assignment] = []
    for group in groups:
        free = sum(op["capacity"] - op["open"] for op in loads if available(op, group))
        if not free:
            continue  # a full group: its queue is not even read (it may be long tonight)
        # a few more than the free seats, for tasks skipped because who is free released them
        for task in dispatch_sql.queued_tasks(conn, group, limit=free + 32):
            op = pick(loads, group, skip=task["released_by"])
            if op is None:
                if pick(loads, group) is None:
                    break  # the group is full: the rest of the queue waits too
                continue  # only who released it is free: it waits for someone else
            others = describe_group([o for o in loads if o is not op], group)
            why = (
                f"least loaded in {group}: {op['name']} had {op['open']}/{op['capacity']} open"
                + (f" (others: {others})" if others != "no operators in this group" else "")
            )
            seq += 1
            op["open"] += 1
            op["last_assigned_seq"] = seq
            given.append((task, op["name"], why, seq))
            done.append(Assignment(task["id"], op["name"], group, why))
    record(conn, given, now)
    return done


def withdraw_unavailable(conn: sqlite3.Connection, now: str) -> int:
    """Tasks assigned to someone who went away (or left the config) and did not claim
    them go back to their queue, keeping their escalation clock."""
    held = dispatch_sql.held_by_unavailable(conn)
    for task in held:
        dispatch_sql.requeue_task(conn, task["id"], now, queue=task["queue"], keep_clock=True)
        why = "no longer configured" if not task["configured"] else task["operator_status"]
        dispatch_sql.log_task(
            conn,
            "withdrawn",
            now,
            task,
            detail=f"{task['assignee']} is {why}; back in the queue unclaimed",
        )
    return len(held)


def give(conn: sqlite3.Connection, task: dict[str, Any], operator: str, why: str, now: str) -> None:
    record(conn, [(task, operator, why, dispatch_sql.last_assigned_seq(conn) + 1)], now)


def record(
    conn: sqlite3.Connection, given: list[tuple[dict[str, Any], str, str, int]], now: str
) -> None:
    """Write (task, operator, why, round-robin sequence) assignments: the tasks, the
    operators' place in the round robin, the orders' move to assigned, the decisions."""
    if not given:
        return
    dispatch_sql.assign_tasks(conn, [(task["id"], operator) for task, operator, _, _ in given], now)
    dispatch_sql.set_assigned_seqs(conn, {op: seq for _, op, _, seq in given}.items())
    orders.advance_many(
        conn,
        [
            (
                (task["platform"], task["shop"], task["order_id"]),
                "assigned",
                f"task:{task['id']} assigned to {operator}",
            )
            for task, operator, _, _ in given
        ],
        now,
    )
    dispatch_sql.log_rows(
        conn,
        [
            dispatch_sql.task_log_row("assigned", now, task, operator=operator, detail=why)
            for task, operator, why, _ in given
        ],
    )
