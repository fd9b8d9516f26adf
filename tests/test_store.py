from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime

import pytest
from sqlite_utils import Database

from connectors.base import Reply
from hub.model import Kind, OrderEvent
from hub.store import IngestJob, RequestRecord, Store, queries, schema
from tests.db_support import migrated

pytestmark = pytest.mark.anyio


def record(**kw: object) -> RequestRecord:
    base: dict[str, object] = dict(
        received_at="2026-11-25T00:00:00.000000Z",
        method="POST",
        path="/webhooks/standard/acme",
        query="",
        headers=[("content-type", "application/json")],
        body=b"{}",
        peer="127.0.0.1:1",
        platform="standard",
        shop="acme",
    )
    base.update(kw)
    return RequestRecord(**base)  # type: ignore[arg-type]


def event(order_id: str, payload: object = None) -> OrderEvent:
    return OrderEvent(
        platform="standard",
        shop="acme",
        kind=Kind.PAID,
        order_id=order_id,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        platform_type="order.paid",
        payload=payload if payload is not None else {"id": order_id},
    )


async def test_migrations_are_numbered_and_recorded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "s.db")
    store.migrate()
    store.migrate()  # idempotent
    names = store.run(
        lambda c: [r[0] for r in c.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    )
    assert names[:2] == ["0001_foundation", "0002_outbox"]
    assert store.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"


def test_an_upgrade_says_which_migrations_it_runs_and_how_long_they_took(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """An upgrade may rebuild an index over millions of rows before the port opens."""
    fresh = Store(tmp_path / "new.db")
    with caplog.at_level(logging.INFO, logger="orderhook.store"):
        fresh.migrate()  # a new file: nothing to say
    assert "migrat" not in caplog.text

    old = tmp_path / "old.db"
    conn = migrated(old, stop_before="0014_requests_by_outcome")
    pending = [m.name for m in schema.migrations.pending(Database(conn))]
    conn.close()
    with caplog.at_level(logging.INFO, logger="orderhook.store"):
        Store(old).migrate()
        Store(old).migrate()  # once
    lines = [r.getMessage() for r in caplog.records if r.name == "orderhook.store"]
    assert pending[:2] == ["0014_requests_by_outcome", "0015_outbox_by_state"]
    assert lines[0] == f"migrating {old}: {', '.join(pending)}"
    assert lines[1].startswith(f"migrated {old} in ") and len(lines) == 2


async def test_a_failing_job_does_not_take_its_batch_down(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "s.db")
    await store.start()
    try:
        ok = Reply(200, b"{}")

        def boom(conn):  # type: ignore[no-untyped-def]
            raise RuntimeError("bug in a stage")

        # an event whose payload cannot be serialised: a bug in a connector
        broken = IngestJob(record(), [event("2", payload={"x": object()})], ok)
        jobs = [
            store.ingest(IngestJob(record(), [event("1")], ok)),
            store.write(boom),
            store.ingest(broken),
            store.ingest(IngestJob(record(), [event("3")], ok)),
        ]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        assert results[0].outcome == "accepted"
        assert isinstance(results[1], RuntimeError)
        assert (results[2].outcome, results[2].reason, results[2].reply.status) == (
            "error",
            "internal_error",
            500,
        )
        assert results[3].outcome == "accepted"
    finally:
        await store.stop()
    counts = store.run(queries.counts)
    assert counts["requests"] == 3 and counts["events"] == 2  # the broken request is kept
    kept = store.run(queries.get_request, results[2].request_id)
    assert "TypeError" in kept["detail"]


async def test_handling_time_is_recorded_after_the_commit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "s.db")
    await store.start()
    result = await store.ingest(IngestJob(record(), [event("1")], Reply(200, b"{}")))
    await store.stop()  # flushes pending timings
    row = store.run(queries.get_request, result.request_id)
    assert row["handling_ms"] is not None and row["handling_ms"] > 0


async def test_stopping_waits_for_a_read_whose_caller_was_cancelled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A stage cancelled at shutdown leaves its read running on a reader thread; closing
    that thread's connection under it crashed the whole process (segfault in sqlite)."""
    store = Store(tmp_path / "s.db")
    await store.start()
    started, release = threading.Event(), threading.Event()
    answers: list[object] = []

    def slow_read(conn):  # type: ignore[no-untyped-def]
        conn.execute("SELECT count(*) FROM requests").fetchone()
        started.set()
        release.wait(30)
        try:  # still inside the same read: the connection must still be open
            answers.append(conn.execute("SELECT count(*) FROM requests").fetchone()[0])
        except Exception as exc:
            answers.append(exc)

    reader = asyncio.create_task(store.read(slow_read))
    await asyncio.to_thread(started.wait, 30)
    reader.cancel()  # what Hub.running() does to its stages
    stopping = asyncio.create_task(store.stop())
    await asyncio.sleep(0.2)  # give stop() its chance to close connections too early
    release.set()
    await stopping
    assert answers == [0]
    assert await store.read(lambda conn: conn.execute("SELECT 1").fetchone()[0]) == 1
    await store.stop()
