"""Open tasks are counted by triggers on `tasks` (schema 0011, `task_counts`): whatever
moves a task, what hand-out, the board and the gauges read must equal a count of the
tasks themselves, or an operator is given work above capacity (or none while free),
and the board shows a backlog that is not there."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.store import board_sql, dispatch_sql, orders_sql
from tests.db_support import migrated, vm_steps

NOW = "2026-11-11T00:00:00.000000Z"
OPERATORS = ["ana", "bo", "cy"]


def fresh(path: Path | None = None, *, stop_before: str | None = None) -> sqlite3.Connection:
    """A migrated database with the three operators working in `general`."""
    conn = migrated(path or ":memory:", stop_before=stop_before)
    staff = [(name, ["general"], 5, "working") for name in OPERATORS]
    dispatch_sql.sync_operators(conn, staff, NOW)
    return conn


def recount(conn: sqlite3.Connection) -> dict[str, object]:
    """Everything the counts answer, counted from the tasks themselves."""
    held = conn.execute(
        "SELECT assignee, count(*) FROM tasks WHERE state IN ('assigned', 'claimed') "
        "GROUP BY assignee"
    )
    waiting = conn.execute(
        "SELECT grp, queue, count(*), min(waiting_since) FROM tasks "
        "WHERE state IN ('queued', 'assigned') GROUP BY grp, queue ORDER BY 1, 2"
    )
    queued = conn.execute(
        "SELECT DISTINCT grp FROM tasks WHERE state = 'queued' AND queue = 'group' ORDER BY 1"
    )
    return {
        "loads": dict(held.fetchall()),
        "waiting": waiting.fetchall(),
        "groups with a queue": [g for (g,) in queued],
        "queue of general": conn.execute(
            "SELECT count(*) FROM tasks WHERE grp = 'general' AND state = 'queued' "
            "AND queue = 'group'"
        ).fetchone()[0],
    }


def counted(conn: sqlite3.Connection) -> dict[str, object]:
    """The same, as dispatch reads it."""
    return {
        "loads": loads(conn),
        "waiting": sorted(dispatch_sql.waiting_by_group(conn)),
        "groups with a queue": sorted(dispatch_sql.groups_with_queue(conn)),
        "queue of general": dispatch_sql.queue_length(conn, "general"),
    }


def loads(conn: sqlite3.Connection) -> dict[str, int]:
    return {op["name"]: op["open"] for op in dispatch_sql.operator_loads(conn) if op["open"]}


def apply(conn: sqlite3.Connection, move: tuple[str, int, int], step: int = 0) -> None:
    """One of the ways dispatch moves a task (engine, hand-out, the operators' API,
    escalation), on task `n` (created in group general or vip when it does not exist)."""
    kind, n, who = move
    task_id, operator = n + 1, OPERATORS[who]
    now = f"2026-11-11T00:00:{step:02d}.000000Z"  # each move later: the clocks differ
    if conn.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone() is None:
        group = ("general", "vip")[n % 2]
        task = dispatch_sql.new_task(task_id, ("standard", "acme", f"o{n}"), group, 0, None, now)
        if kind == "born closed":  # routed and cancelled in one batch: inserted closed
            task.update(state="cancelled", assignee=operator)
        dispatch_sql.insert_tasks(conn, [task])
    if kind == "assign":
        dispatch_sql.assign_tasks(conn, [(task_id, operator)], now)
    elif kind == "claim":
        dispatch_sql.claim_task(conn, task_id, operator, now)
    elif kind == "release":
        dispatch_sql.requeue_task(conn, task_id, now, released_by=operator)
    elif kind == "withdraw":  # its holder went away: back to the queue, clock kept
        dispatch_sql.requeue_task(conn, task_id, now, keep_clock=True)
    elif kind == "escalate":
        dispatch_sql.requeue_task(conn, task_id, now, queue="supervisor", escalated=True)
    elif kind in ("done", "cancelled"):
        dispatch_sql.close_task(conn, task_id, kind, "order shipped", now)


MOVES = st.tuples(
    st.sampled_from(
        ["assign", "claim", "release", "withdraw", "escalate", "done", "cancelled", "born closed"]
    ),
    st.integers(0, 5),
    st.integers(0, len(OPERATORS) - 1),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(MOVES, max_size=30))
def test_what_dispatch_reads_equals_a_recount_after_any_moves(moves) -> None:  # type: ignore[no-untyped-def]
    conn = fresh()
    for step, move in enumerate(moves):
        apply(conn, move, step)
        assert counted(conn) == recount(conn), f"after {move}"


def test_a_database_from_before_the_counts_gets_them_from_its_tasks(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = fresh(db, stop_before="0011_task_counts")
    moves = [("assign", 0, 0), ("claim", 1, 0), ("assign", 2, 1), ("done", 2, 1), ("assign", 3, 2)]
    for step, move in enumerate(moves):
        apply(conn, move, step)
    apply(conn, ("release", 4, 0), 9)  # a task left in the queue
    conn.close()

    conn = fresh(db)  # the hub starting on it migrates it
    assert loads(conn) == {"ana": 2, "cy": 1}
    assert counted(conn) == recount(conn)
    apply(conn, ("claim", 3, 1), 10)  # and keeps them from then on
    assert loads(conn) == {"ana": 2, "bo": 1}


def open_orders(conn: sqlite3.Connection, n: int, statuses: tuple[str, ...]) -> None:
    rows = [
        orders_sql.order_row(
            ("standard", "acme", f"o{i}"),
            status=statuses[i % len(statuses)],
            amount="1.00",
            currency="CNY",
            facts={},
            first_event_id=i,
            last_event_id=i,
            occurred_at=NOW,
            now=NOW,
        )
        for i in range(n)
    ]
    orders_sql.save_orders(conn, rows)


def test_a_database_from_before_the_order_counts_gets_them_from_its_orders(
    tmp_path: Path,
) -> None:
    db = tmp_path / "old.db"
    conn = fresh(db, stop_before="0013_order_counts")
    open_orders(conn, 10, ("paid", "assigned", "shipped", "cancelled", "picking"))
    conn.close()

    conn = fresh(db)  # the hub starting on it migrates it
    stages = board_sql.snapshot(conn, datetime(2026, 11, 11, tzinfo=UTC))["stages"]
    assert stages == {"created": 0, "paid": 2, "assigned": 2, "picking": 2, "packed": 0}
    # and keeps them as orders move on
    orders_sql.set_statuses(conn, [(("standard", "acme", "o0"), "packed")], NOW)
    open_orders(conn, 1, ("created",))  # o0 again: saved as created
    recount = dict(conn.execute("SELECT status, count(*) FROM orders GROUP BY 1").fetchall())
    assert dict(conn.execute("SELECT status, n FROM order_counts WHERE n > 0")) == recount
    stages = board_sql.snapshot(conn, datetime(2026, 11, 11, tzinfo=UTC))["stages"]
    assert stages == {"created": 1, "paid": 1, "assigned": 2, "picking": 2, "packed": 0}


def test_what_hand_out_and_the_board_read_does_not_walk_the_open_tasks() -> None:
    conn = fresh()
    open_orders(conn, 3000, ("paid", "assigned", "picking"))
    groups = ("general", "vip", "south")
    tasks = [
        dispatch_sql.new_task(n + 1, ("standard", "acme", f"o{n}"), groups[n % 3], 0, None, NOW)
        for n in range(3000)
    ]
    tasks[0]["grp"], tasks[1]["grp"] = "north", "east"
    dispatch_sql.insert_tasks(conn, tasks)
    dispatch_sql.requeue_task(conn, 1, NOW, queue="supervisor", escalated=True)  # north
    dispatch_sql.assign_tasks(conn, [(2, "ana")] + [(n, "bo") for n in range(3, 1500)], NOW)
    with vm_steps(conn, 1000) as steps:
        assert sorted(dispatch_sql.groups_with_queue(conn)) == ["general", "south", "vip"]
        assert sorted(dispatch_sql.open_task_groups(conn)) == [
            "east",
            "general",
            "north",
            "south",
            "vip",
        ]
        assert loads(conn) == {"ana": 1, "bo": 1497}
        board = board_sql.snapshot(conn, datetime(2026, 11, 11, 0, 1, tzinfo=UTC))
        assert board["backlog"]["north"]["escalated"] == 1
        assert board["backlog"]["general"]["oldest_unclaimed_s"] == 60
        assert board["stages"] == {
            "created": 0,
            "paid": 1000,
            "assigned": 1000,
            "picking": 1000,
            "packed": 0,
        }
    # walking 3,000 tasks (or orders) takes tens of thousands of VM steps; a seek per group,
    # hundreds
    assert steps.ticks < 5, steps


def test_closed_tasks_are_listed_newest_first_without_sorting_them_all() -> None:
    conn = fresh()
    tasks = [
        dispatch_sql.new_task(n + 1, ("standard", "acme", f"o{n}"), "general", n % 3, None, NOW)
        for n in range(3000)
    ]
    dispatch_sql.insert_tasks(conn, tasks)
    dispatch_sql.close_tasks(
        conn, [(n, "done" if n % 2 else "cancelled", "shipped") for n in range(1, 2991)], NOW
    )
    with vm_steps(conn, 1000) as steps:
        done = dispatch_sql.list_tasks(conn, states=("done",), limit=3)
        closed = dispatch_sql.list_tasks(conn, states=("done", "cancelled"), limit=3)
    assert [t["id"] for t in done] == [2989, 2987, 2985]
    assert [t["id"] for t in closed] == [2990, 2989, 2988]
    # the open ones still come in the order they should be taken: priority first
    waiting = dispatch_sql.list_tasks(conn, limit=5)
    assert [(t["priority"], t["id"]) for t in waiting] == [
        (2, 2991),
        (2, 2994),
        (2, 2997),
        (2, 3000),
        (1, 2993),
    ]
    assert steps.ticks < 3, steps
