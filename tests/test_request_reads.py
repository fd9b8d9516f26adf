"""The reads of recorded requests that run while the hub works (the API's list, the live
stream, the board's last hour) seek to what they show instead of walking the requests
of an outcome, which grow for `hub.retention_days`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.model import iso_utc
from hub.store import board_sql, queries, sandbox_sql
from tests.db_support import migrated, vm_steps

START = datetime(2026, 11, 11, tzinfo=UTC)
N = 7_200  # one a second for two hours; every 50th rejected


def requests_db() -> sqlite3.Connection:
    conn = migrated()
    conn.executemany(
        "INSERT INTO requests (id, received_at, method, path, headers, body, outcome, reason, "
        "response_status) VALUES (?, ?, 'POST', '/webhooks/standard/acme', '[]', x'7b7d', ?, ?, ?)",
        [
            (
                i,
                iso_utc(START + timedelta(seconds=i)),
                "rejected" if i % 50 == 0 else "accepted",
                ("bad_signature" if i % 100 == 0 else "stale") if i % 50 == 0 else None,
                401 if i % 50 == 0 else 200,
            )
            for i in range(1, N + 1)
        ],
    )
    return conn


def steps_of(conn: sqlite3.Connection, read: Callable[[], Any]) -> tuple[Any, int]:
    """What `read` returns, and how many hundreds of SQLite VM steps it took."""
    with vm_steps(conn, 100) as steps:
        found = read()
    return found, steps.ticks


def test_the_newest_of_an_outcome_are_a_seek_away() -> None:
    conn = requests_db()
    rejected, steps = steps_of(
        conn, lambda: queries.list_requests(conn, outcome="rejected", limit=3)
    )
    assert [r["id"] for r in rejected] == [7200, 7150, 7100]
    page, more = steps_of(
        conn, lambda: queries.list_requests(conn, outcome="accepted", limit=2, before_id=7200)
    )
    assert [r["id"] for r in page] == [7199, 7198]
    # walking one outcome's 7,056 index entries and sorting them takes hundreds
    assert steps + more < 10, (steps, more)


def test_the_stream_reads_from_its_cursor() -> None:
    conn = requests_db()
    rows, steps = steps_of(conn, lambda: sandbox_sql.requests_after(conn, 7_000, ("rejected",)))
    assert [r["id"] for r in rows] == [7050, 7100, 7150, 7200]
    rows, more = steps_of(
        conn, lambda: sandbox_sql.requests_after(conn, 7_100, ("accepted", "rejected"), limit=5)
    )
    assert [r["id"] for r in rows] == [7101, 7102, 7103, 7104, 7105]
    # a listener of a rare outcome, far behind: no match since the cursor means nothing
    # to advance it by, so a walk by id would read every request again on every poll
    rows, rare = steps_of(conn, lambda: sandbox_sql.requests_after(conn, 0, ("error",)))
    assert rows == []
    rows, behind = steps_of(conn, lambda: sandbox_sql.requests_after(conn, 0, ("rejected",), 3))
    assert [r["id"] for r in rows] == [50, 100, 150]
    assert steps + more + rare + behind < 30, (steps, more, rare, behind)


def test_the_boards_last_hour_counts_only_the_last_hour() -> None:
    conn = requests_db()
    now = START + timedelta(seconds=N)
    snap, steps = steps_of(conn, lambda: board_sql.snapshot(conn, now))
    hour_ago = iso_utc(now - timedelta(hours=1))
    recount = dict(
        conn.execute(
            "SELECT reason, count(*) FROM requests WHERE outcome = 'rejected' "
            "AND received_at >= ? GROUP BY 1",
            (hour_ago,),
        ).fetchall()
    )
    assert snap["rejected_last_hour"] == recount == {"bad_signature": 37, "stale": 36}
    # the hour's requests and ten minutes before: not the two hours' rejected ones
    assert steps < 30, steps
    # an idle hour later, nothing is counted, and nothing is walked to find that out
    later, idle_steps = steps_of(conn, lambda: board_sql.snapshot(conn, now + timedelta(hours=2)))
    assert later["rejected_last_hour"] == {}
    assert idle_steps < 5, idle_steps
