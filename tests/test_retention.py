"""Retention: what ages out is dropped, what is evidence or business record stays, and the
acks do not wait for it."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import httpx
import pytest

from hub import retention
from hub.model import iso_utc, utcnow
from hub.runtime import Hub
from hub.store import delivery_sql
from tests.helpers import order_body, signed

pytestmark = pytest.mark.anyio

OLD = "2025-01-01T00:00:00.000000Z"  # past both the default 30 days
URL = "/webhooks/standard/acme"


def seed_requests(conn: sqlite3.Connection, n: int, received_at: str) -> None:
    """n recorded pushes (the raw request and its event) received at `received_at`."""
    first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM requests").fetchone()[0]
    conn.execute(
        "WITH RECURSIVE k(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM k WHERE i < ?) "
        "INSERT INTO requests (id, received_at, method, path, headers, body, platform, shop, "
        "outcome, response_status) SELECT i, ?, 'POST', ?, '{}', zeroblob(400), "
        "'standard', 'acme', 'accepted', 200 FROM k",
        (first, first + n - 1, received_at, URL),
    )
    conn.execute(
        "INSERT INTO events (request_id, platform, shop, dedupe_key, kind, platform_type, "
        "order_id, occurred_at, payload, payload_sha, created_at) "
        "SELECT id, 'standard', 'acme', 'seed:' || id, 'paid', 'order.paid', id, "
        "received_at, '{}', '', received_at FROM requests WHERE id >= ?",
        (first,),
    )


def seed_outbox(conn: sqlite3.Connection, rows: list[tuple[str, str]]) -> None:
    """Outbox rows in (state, settled_at), each with one attempt; none due (the hub's
    delivery worker would send a pending one, and fail it: there is no channel 'ops')."""
    for n, (state, settled_at) in enumerate(rows):
        row_id = conn.execute(
            "INSERT INTO outbox (kind, target, payload, state, next_attempt_at, settled_at, "
            "created_at, updated_at) VALUES ('notify', 'ops', ?, ?, ?, ?, ?, ?)",
            (f'{{"n":{n}}}', state, "2999-01-01T00:00:00Z", settled_at, settled_at, settled_at),
        ).lastrowid
        conn.execute(
            "INSERT INTO outbox_attempts (outbox_id, started_at, duration_ms, request, "
            "outcome) VALUES (?, ?, 1.0, '{}', ?)",
            (row_id, settled_at, state),
        )


def table(conn: sqlite3.Connection, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    return conn.execute(sql).fetchall()


async def test_what_aged_out_goes_and_the_rest_stays(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    now = iso_utc(utcnow())
    # more of each than one step drops, so it takes several
    await hub.store.write(seed_requests, 2_500, OLD)
    await hub.store.write(seed_requests, 3, now)
    aged = [("done", OLD)] * 1_500
    await hub.store.write(seed_outbox, [*aged, ("done", now), ("dead", OLD), ("pending", now)])

    with caplog.at_level(logging.INFO, logger="orderhook.retention"):
        assert await retention.prune(hub) == (2_500, 1_500)

    q = hub.store.read
    assert await q(table, "SELECT received_at, count(*) FROM requests GROUP BY 1") == [(now, 3)]
    # events are the business record: they outlive their raw bytes
    assert await q(table, "SELECT count(*) FROM events") == [(2_503,)]
    # a recent delivery stays, and a dead row waits for a person however old it is
    kept = await q(table, "SELECT state, settled_at FROM outbox ORDER BY id")
    assert kept == [("done", now), ("dead", OLD), ("pending", now)]
    assert await q(table, "SELECT count(*) FROM outbox_attempts") == [(3,)]
    # the backlog gauge's counts follow the rows the prune dropped
    assert await q(delivery_sql.state_counts) == {"done": 1, "dead": 1, "pending": 1}
    assert "retention dropped 2500 raw request(s) and 1500 delivered outbox row(s)" in caplog.text
    # nothing left to drop: nothing done, nothing logged
    caplog.clear()
    assert await retention.prune(hub) == (0, 0)
    assert "retention" not in caplog.text


async def test_pushes_are_acked_while_an_hour_of_requests_ages_out(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    """A month after a sale, an hour of its pushes ages out at once. Dropping them in one
    transaction held the write turn until the last row went, and every ack waited."""
    await hub.store.write(seed_requests, 60_000, OLD)

    async def old_left() -> int:
        sql = f"SELECT count(*) FROM requests WHERE received_at = '{OLD}'"
        return int((await hub.store.read(table, sql))[0][0])

    pruning = asyncio.create_task(retention.prune(hub))
    while await old_left() == 60_000:  # the first step is in
        await asyncio.sleep(0.005)

    body = order_body(order_id="during-retention")
    r = await client.post(URL, content=body, headers=signed(body))
    assert r.status_code == 200
    # acked while the prune still had rows to drop: it did not wait for all of them
    assert not pruning.done()
    assert await old_left() > 0
    assert await pruning == (60_000, 0)
    assert await old_left() == 0
