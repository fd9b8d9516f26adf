"""Operators' open-task counts are kept by triggers on `tasks` (schema 0011): whatever
moves a task, the count hand-out reads must equal a count of the tasks themselves, or
an operator is given work above capacity, or none while free."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from hub.store import dispatch_sql, schema

NOW = "2026-11-11T00:00:00.000000Z"
OPERATORS = ["ana", "bo", "cy"]


def fresh(path: Path | None = None, *, stop_before: str | None = None) -> sqlite3.Connection:
    """A migrated database with the three operators working in `general`."""
    conn = sqlite3.connect(path or ":memory:", isolation_level=None)
    schema.migrations.apply(Database(conn), stop_before=stop_before)
    staff = [(name, ["general"], 5, "working") for name in OPERATORS]
    dispatch_sql.sync_operators(conn, staff, NOW)
    return conn


def recount(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT assignee, count(*) FROM tasks WHERE state IN ('assigned', 'claimed') "
        "GROUP BY assignee"
    )
    return {name: n for name, n in rows}


def loads(conn: sqlite3.Connection) -> dict[str, int]:
    return {op["name"]: op["open"] for op in dispatch_sql.operator_loads(conn) if op["open"]}


def apply(conn: sqlite3.Connection, move: tuple[str, int, int]) -> None:
    """One of the ways dispatch moves a task (engine, hand-out, the operators' API,
    escalation), on task `n` (created when it does not exist yet)."""
    kind, n, who = move
    task_id, operator = n + 1, OPERATORS[who]
    if conn.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone() is None:
        task = dispatch_sql.new_task(
            task_id, ("standard", "acme", f"o{n}"), "general", 0, None, NOW
        )
        if kind == "born closed":  # routed and cancelled in one batch: inserted closed
            task.update(state="cancelled", assignee=operator)
        dispatch_sql.insert_tasks(conn, [task])
    if kind == "assign":
        dispatch_sql.assign_tasks(conn, [(task_id, operator)], NOW)
    elif kind == "claim":
        dispatch_sql.claim_task(conn, task_id, operator, NOW)
    elif kind == "release":
        dispatch_sql.requeue_task(conn, task_id, NOW, released_by=operator)
    elif kind == "escalate":
        dispatch_sql.requeue_task(conn, task_id, NOW, queue="supervisor", escalated=True)
    elif kind in ("done", "cancelled"):
        dispatch_sql.close_task(conn, task_id, kind, "order shipped", NOW)


MOVES = st.tuples(
    st.sampled_from(["assign", "claim", "release", "escalate", "done", "cancelled", "born closed"]),
    st.integers(0, 5),
    st.integers(0, len(OPERATORS) - 1),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(MOVES, max_size=30))
def test_the_load_hand_out_reads_equals_a_recount_after_any_moves(moves) -> None:  # type: ignore[no-untyped-def]
    conn = fresh()
    for move in moves:
        apply(conn, move)
        assert loads(conn) == recount(conn), f"after {move}"


def test_a_database_from_before_the_counts_gets_them_from_its_tasks(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = fresh(db, stop_before="0011_operator_load")
    moves = [("assign", 0, 0), ("claim", 1, 0), ("assign", 2, 1), ("done", 2, 1), ("assign", 3, 2)]
    for move in moves:
        apply(conn, move)
    conn.close()

    conn = fresh(db)  # the hub starting on it migrates it
    assert loads(conn) == {"ana": 2, "cy": 1} == recount(conn)
    apply(conn, ("claim", 3, 1))  # and keeps them from then on
    assert loads(conn) == {"ana": 2, "bo": 1}


def test_finding_the_groups_with_work_does_not_walk_the_queue() -> None:
    conn = fresh()
    groups = ("general", "vip", "south")
    tasks = [
        dispatch_sql.new_task(n + 1, ("standard", "acme", f"o{n}"), groups[n % 3], 0, None, NOW)
        for n in range(3000)
    ]
    tasks[0]["grp"], tasks[1]["grp"] = "north", "east"
    dispatch_sql.insert_tasks(conn, tasks)
    dispatch_sql.requeue_task(conn, 1, NOW, queue="supervisor", escalated=True)  # north
    dispatch_sql.assign_tasks(conn, [(2, "ana")], NOW)  # east: held, not queued
    steps = Counter[str]()
    conn.set_progress_handler(lambda: steps.update(["x1000"]), 1000)
    assert sorted(dispatch_sql.groups_with_queue(conn)) == ["general", "south", "vip"]
    assert sorted(dispatch_sql.open_task_groups(conn)) == ["east", "general", "south", "vip"]
    # walking 3,000 tasks takes tens of thousands of VM steps; a seek per group, hundreds
    assert steps["x1000"] < 5, steps
