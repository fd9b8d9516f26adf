"""The ingest writer process: what happens when it dies, and who else gets to write."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import Reply
from hub.runtime import Hub
from hub.settings import Settings
from hub.store import IngestJob, Store, StoreUnavailable, queries
from tests.helpers import order_body, signed
from tests.test_store import event, record

pytestmark = pytest.mark.anyio

OK = Reply(200, b'{"ok":true}')
URL = "/webhooks/standard/acme"


async def test_a_dead_writer_fails_waiting_requests_and_is_replaced(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    await store.start()
    try:
        first = await store.ingest(IngestJob(record(), [event("1")], OK))
        assert first.outcome == "accepted"
        pid = store._ingest.process.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        # whatever was waiting when it died is refused (the platform sends it again),
        # never left hanging; then a new writer takes the next requests
        outcomes: list[str] = []
        for n in range(2, 200):
            try:
                result = await asyncio.wait_for(
                    store.ingest(IngestJob(record(), [event(str(n))], OK)), 30
                )
            except StoreUnavailable:
                outcomes.append("unavailable")
                await asyncio.sleep(0.05)
                continue
            outcomes.append(result.outcome)
            break
        assert outcomes[-1] == "accepted"
        assert store._ingest.process.pid != pid  # type: ignore[union-attr]
        # what /healthz and /metrics report (orderhook_worker_restarts)
        assert store.workers()["ingest writer"] == {"up": True, "restarts": 1}
    finally:
        await store.stop()
    counts = store.run(queries.counts)
    assert counts["requests"] == 2 and counts["events"] == 2


async def test_the_hubs_own_writes_are_not_starved_by_a_burst_of_pushes(tmp_path: Path) -> None:
    """Task claims, dispatch and the outbox write through the hub's writer thread while
    the ingest writer commits batch after batch: they take turns."""
    store = Store(tmp_path / "s.db")
    await store.start()
    try:
        flood: list[asyncio.Future] = []  # type: ignore[type-arg]

        async def push(n: int) -> None:
            for i in range(n):
                flood.append(store.ingest(IngestJob(record(), [event(f"f{i}")], OK)))
                if i % 50 == 0:
                    await asyncio.sleep(0)

        pushing = asyncio.create_task(push(4000))
        await asyncio.sleep(0.05)
        written = await store.write(
            lambda conn: conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        )
        still_waiting = sum(1 for f in flood if not f.done())
        await pushing
        await asyncio.gather(*flood)
    finally:
        await store.stop()
    # the write went through in the middle of the burst, not after it
    assert still_waiting > 0 or written < 4000
    assert store.run(queries.counts)["requests"] == 4000


async def test_a_command_beside_a_hub_under_a_burst_gets_its_turn(tmp_path: Path) -> None:
    """`orderhook users add`, `rules`, `replay`... write through `Store.run`, from another
    process than the hub's: they too get the next turn, not a gap they may never find."""
    store = Store(tmp_path / "s.db")
    await store.start()
    try:
        flood = [store.ingest(IngestJob(record(), [event(f"f{i}")], OK)) for i in range(6000)]
        await asyncio.sleep(0.05)
        cli = Store(tmp_path / "s.db")  # a second Store, as a command builds its own
        counted = await asyncio.to_thread(
            cli.run, lambda conn: conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        )
        still_waiting = sum(1 for f in flood if not f.done())
        await asyncio.gather(*flood)
    finally:
        await store.stop()
    assert still_waiting > 0 or counted < 6000  # in the middle of the burst


async def test_a_replaced_writer_judges_pushes_by_the_hubs_settings(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    # the settings travel to the writer once, not with each push: a new writer must
    # get them again before it judges anything
    body = order_body(order_id="1")
    assert (await client.post(URL, content=body, headers=signed(body))).status_code == 200
    os.kill(hub.store._ingest.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
    statuses: list[int] = []
    for n in range(2, 200):
        body = order_body(order_id=str(n))
        r = await client.post(URL, content=body, headers=signed(body))
        statuses.append(r.status_code)
        if r.status_code != 503:
            break
        await asyncio.sleep(0.05)
    assert statuses[-1] == 200, statuses  # not a 500 from a writer without settings
    assert set(statuses[:-1]) <= {503}


def broken_admit(settings: object, received: tuple[Any, ...]) -> IngestJob:
    raise RuntimeError("a bug in judging")


async def test_a_push_the_writer_fails_to_judge_is_kept_and_answered_500(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", admit=f"{__name__}:broken_admit")
    await store.start()
    try:
        received = (
            1_764_000_000_000_000,
            "POST",
            "/webhooks/standard/acme",
            b"a=1",
            [(b"content-type", b"application/json")],
            b'{"id": 1}',
            "127.0.0.1:5000",
            False,
        )
        result = await store.receive(received, {"any": "settings"})
    finally:
        await store.stop()
    assert (result.outcome, result.reason, result.reply.status) == ("error", "internal_error", 500)
    kept = store.run(lambda c: queries.list_requests(c, limit=1))[0]
    assert kept["body"] == b'{"id": 1}' and kept["path"] == "/webhooks/standard/acme"
    assert kept["query"] == "a=1" and kept["received_at"].startswith("2025-11-24T")
    assert "a bug in judging" in kept["detail"]


async def test_a_request_the_writer_cannot_be_sent_fails_alone(tmp_path: Path) -> None:
    # marshal carries plain values only: a server handing the app odd header objects
    # must cost that request (a 503, the sender retries), not the batch it travels with
    store = Store(tmp_path / "s.db", admit="hub.ingest:admit")
    await store.start()
    try:
        good = (1_764_000_000_000_000, "POST", "/webhooks/nowhere/x", b"", [], b"{}", None, False)
        odd = (*good[:4], [(b"x-odd", object())], *good[5:])
        settings = Settings(db=tmp_path / "s.db")
        results = await asyncio.gather(
            store.receive(good, settings), store.receive(odd, settings), return_exceptions=True
        )
        # alone in its frame, then the next request still goes out at once
        with pytest.raises(StoreUnavailable):
            await store.receive(odd, settings)
        after = await asyncio.wait_for(store.receive(good, settings), 10)
        assert after.reason == "unknown_platform"
    finally:
        await store.stop()
    first, second = results
    assert not isinstance(first, BaseException)
    assert (first.outcome, first.reason) == ("rejected", "unknown_platform")
    assert isinstance(second, StoreUnavailable)
    assert store.run(queries.counts)["requests"] == 2


async def test_a_commands_read_does_not_hold_the_hubs_writes(tmp_path: Path) -> None:
    """`orderhook export`, `outbox list` and the like read beside a running hub: a slow
    read must not hold its acks (it took the write turn for its whole length)."""
    store = Store(tmp_path / "s.db")
    await store.start()
    reading, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def slow_read(conn: sqlite3.Connection) -> int:
        conn.execute("SELECT count(*) FROM requests").fetchone()
        reading.set()
        release.wait(30)
        return int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])

    command = threading.Thread(target=lambda: seen.append(store.run_read(slow_read)))
    try:
        command.start()
        assert await asyncio.to_thread(reading.wait, 10)
        # a push is recorded and acked while the command is still reading
        result = await asyncio.wait_for(store.ingest(IngestJob(record(), [event("1")], OK)), 10)
        assert result.outcome == "accepted"
        assert command.is_alive()
    finally:
        release.set()
        await asyncio.to_thread(command.join, 10)
        await store.stop()
    assert seen == [0]  # one snapshot for the whole read: from before the push
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.run_read(lambda conn: conn.execute("DELETE FROM requests"))
    assert store.run_read(
        lambda conn: conn.execute("SELECT count(*) FROM requests").fetchone()
    ) == (1,)
