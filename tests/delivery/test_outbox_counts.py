"""The outbox's rows by state (the backlog gauge, `orderhook outbox`) are counted by
triggers, and neither the gauge, the hourly prune nor a list of one state's rows walks
the delivered rows kept for `keep_done_days`."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.store import board_sql, delivery_sql
from hub.store.outbox_sql import enqueue
from tests.db_support import migrated, vm_steps

NOW = "2026-11-11T00:00:00.000000Z"
LATER = "2026-11-11T00:10:00.000000Z"


def recount(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())


def queue(conn: sqlite3.Connection, n: int) -> list[int]:
    ids = [enqueue(conn, kind="notify", target="ops", payload={"n": i}) for i in range(n)]
    return [i for i in ids if i is not None]


def lease(conn: sqlite3.Connection, limit: int) -> list[int]:
    rows = delivery_sql.claim(
        conn,
        now="9999-01-01T00:00:00Z",  # everything queued is due
        lease_until={"notify": LATER},
        owner="me",
        capacity={},
        default_capacity=limit,
        limit=limit,
    )
    return [row["id"] for row in rows]


def test_a_database_from_before_the_counts_gets_them_from_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = migrated(db, stop_before="0012_outbox_housekeeping")
    ids = queue(conn, 6)
    leased = lease(conn, 4)
    delivery_sql.settle(conn, leased[0], state="done", counted=False)
    delivery_sql.settle(conn, leased[1], state="dead", counted=True, error="410")
    conn.close()

    conn = migrated(db)  # the hub starting on it migrates it
    assert delivery_sql.state_counts(conn) == {"pending": 2, "leased": 2, "done": 1, "dead": 1}
    # and keeps them through everything the worker and people do to a row
    delivery_sql.settle(conn, leased[2], state="pending", counted=True, next_attempt_at=NOW)
    delivery_sql.sweep(conn, "9999-01-01T00:00:00Z")  # the last lease expired
    delivery_sql.requeue(conn, [leased[1]])  # someone re-sends the dead one
    assert delivery_sql.state_counts(conn) == recount(conn) == {"pending": 5, "done": 1}
    conn.execute("UPDATE outbox SET settled_at = ? WHERE state = 'done'", ("2026-01-01",))
    assert delivery_sql.prune_done(conn, NOW) == 1
    assert delivery_sql.state_counts(conn) == recount(conn) == {"pending": 5}
    assert delivery_sql.get_row(conn, leased[0]) is None  # the delivered one went
    assert len(ids) == 6


def test_the_gauge_and_the_prune_do_not_walk_the_delivered_rows() -> None:
    conn = migrated()
    conn.execute("BEGIN")
    queue(conn, 5_000)
    for row_id in lease(conn, 5_000):
        delivery_sql.settle(conn, row_id, state="done", counted=False)
    conn.execute("UPDATE outbox SET settled_at = ?", (NOW,))
    conn.execute("COMMIT")
    queue(conn, 3)  # the backlog

    with vm_steps(conn, 100) as steps:
        assert delivery_sql.state_counts(conn) == {"done": 5_000, "pending": 3}
        assert delivery_sql.prune_done(conn, "2026-01-01T00:00:00Z") == 0  # none old enough yet
    # counting 5,000 index entries alone takes ~20,000 VM steps
    assert steps.ticks < 10, steps


def test_each_states_rows_are_read_without_the_delivered_ones() -> None:
    """The board's dead rows (four times a second while watched), `outbox list --state`,
    `retry --dead` and a receiver's 410 read only the rows of the state they want."""
    conn = migrated()
    conn.execute("BEGIN")
    queue(conn, 5_000)
    for row_id in lease(conn, 5_000):
        delivery_sql.settle(conn, row_id, state="done", counted=False)
    conn.execute("COMMIT")
    dead = queue(conn, 3)
    for row_id in lease(conn, 3):
        delivery_sql.settle(conn, row_id, state="dead", counted=True, error="400")
    waiting = queue(conn, 4)

    def listed(state: str, limit: int = 50) -> list[int]:
        flt = delivery_sql.RowFilter(state=state)
        return [r["id"] for r in delivery_sql.list_rows(conn, flt, limit=limit)]

    with vm_steps(conn, 100) as steps:
        assert listed("dead") == dead[::-1]
        assert listed("pending") == waiting[::-1]
        assert listed("done", limit=2) == [5_000, 4_999]
        assert delivery_sql.matching_ids(conn, delivery_sql.RowFilter(state="dead")) == dead
        snap = board_sql.snapshot(conn, datetime(2026, 11, 11, tzinfo=UTC))
        assert snap["dead_outbox"]["total"] == 3
        assert [r["id"] for r in snap["dead_outbox"]["recent"]] == dead[::-1]
        # the receiver answers 410 Gone, then is re-enabled
        assert delivery_sql.disable_lane_rows(conn, "notify", "ops", "410 Gone") == 4
        assert listed("disabled") == waiting[::-1]
        assert delivery_sql.requeue_disabled(conn, "notify", "ops") == 4
    # one pass over the 5,000 delivered rows alone takes ~200 hundreds of steps
    assert steps.ticks < 40, steps
    with pytest.raises(ValueError, match="state is one of"):
        delivery_sql.RowFilter(state="lost")  # refused when made, before any SQL
