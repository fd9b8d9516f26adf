"""Overload: while pushes wait too long for their commit, new ones are answered 503 at once.

The commit is held up the way a saturated or stalled disk holds it up: another connection
keeps SQLite's write lock, so the ingest writer waits in its busy handler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from connectors.jddj import connector as jddj
from hub.app import create_app
from hub.auth import issue_token
from hub.model import Kind
from hub.runtime import Hub
from hub.settings import Settings, Shop
from hub.store import Store, queries
from tests.conftest import CHROMIUM_FLAGS, serve_app
from tests.helpers import order_body, signed

pytestmark = pytest.mark.anyio

URL = "/webhooks/standard/acme"
DJ_SECRET = "dj-overload-secret"


@contextmanager
def write_lock_held(settings: Settings) -> Iterator[None]:
    conn = sqlite3.connect(settings.db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def waiting_longer_than(hub: Hub, seconds: float) -> None:
    for _ in range(500):
        if hub.store.ingest_waited() > seconds:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the push never waited for its commit")


def with_shed_after(settings: Settings, ms: int) -> Settings:
    dj = Shop(name="dj", platform="jddj", secret=DJ_SECRET, app_key="dj-key")
    return dataclasses.replace(settings, shed_after_ms=ms, shops={**settings.shops, "dj": dj})


def client_of(hub: Hub) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(hub, lifespan=False), client=("10.0.0.9", 1))
    return httpx.AsyncClient(transport=transport, base_url="http://hub")


@pytest.fixture
async def shedding(settings: Settings) -> AsyncIterator[tuple[Hub, httpx.AsyncClient]]:
    hub = Hub(with_shed_after(settings, 100))
    hub.shedding.quiet = 0.0  # an episode ends with the first push taken after it
    async with hub.running(), client_of(hub) as client:
        yield hub, client


async def push(client: httpx.AsyncClient, order_id: str) -> httpx.Response:
    body = order_body(order_id=order_id)
    return await client.post(URL, content=body, headers=signed(body))


async def test_a_push_arriving_while_acks_lag_is_answered_503_at_once_and_not_recorded(
    shedding: tuple[Hub, httpx.AsyncClient], caplog: pytest.LogCaptureFixture, admin_token: str
) -> None:
    hub, client = shedding
    caplog.set_level(logging.WARNING, "orderhook.ingest")
    with write_lock_held(hub.settings):
        waiting = asyncio.create_task(push(client, "held-1"))
        await waiting_longer_than(hub, 0.1)
        shed = await push(client, "shed-1")
        assert not waiting.done()  # the shed answer did not wait for the stalled commit
        health = (await client.get("/healthz")).json()
        assert health["ingest_oldest_wait_ms"] > 100
    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "1"
    assert shed.json()["error"]["reason"] == "overloaded"
    assert "answering 503 until it catches up" in caplog.text

    held = await waiting  # the push that was waiting is committed and acked
    assert held.status_code == 200
    after = await push(client, "after-1")  # caught up: taken again
    assert after.status_code == 200
    assert "1 push(es) were answered 503" in caplog.text

    counts = await hub.store.read(queries.counts)
    assert counts["requests"] == 2 and counts["events"] == 2  # held-1 and after-1 only
    auth = {"authorization": f"Bearer {admin_token}"}
    metrics = (await client.get("/metrics", headers=auth)).text
    assert (
        'orderhook_requests_total{outcome="shed",platform="standard",reason="overloaded",'
        'shop="acme"} 1.0' in metrics
    )


async def test_bursts_of_shedding_close_together_are_one_episode(
    shedding: tuple[Hub, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    hub, client = shedding
    hub.shedding.quiet = 3600.0  # pushes taken in between do not end it
    caplog.set_level(logging.WARNING, "orderhook.ingest")
    for n in range(2):
        with write_lock_held(hub.settings):
            waiting = asyncio.create_task(push(client, f"held-{n}"))
            await waiting_longer_than(hub, 0.1)
            assert (await push(client, f"shed-{n}")).status_code == 503
        assert (await waiting).status_code == 200
        assert (await push(client, f"taken-{n}")).status_code == 200
    assert caplog.text.count("answering 503 until it catches up") == 1
    assert "caught up" not in caplog.text
    assert hub.shedding.view()["active"] is True
    assert hub.shedding.view()["count"] == 2


async def test_jd_daojia_is_told_to_push_again(shedding: tuple[Hub, httpx.AsyncClient]) -> None:
    hub, client = shedding
    out = jddj.simulate(hub.settings.shops["dj"], Kind.PAID, "9001")
    url = "/webhooks/jddj/dj" + out.tail
    with write_lock_held(hub.settings):
        waiting = asyncio.create_task(push(client, "held-2"))
        await waiting_longer_than(hub, 0.1)
        shed = await client.post(url, content=out.body, headers=out.headers)
    assert (await waiting).status_code == 200
    assert shed.status_code == 503
    assert shed.json()["code"] == "-10000"  # Daojia's "push again"
    assert shed.json()["msg"] == "overloaded"
    again = await client.post(url, content=out.body, headers=out.headers)  # Daojia's re-push
    assert again.status_code == 200 and again.json()["code"] == "0"


async def test_with_shedding_off_a_push_waits_for_the_commit(settings: Settings) -> None:
    hub = Hub(with_shed_after(settings, 0))
    async with hub.running(), client_of(hub) as client:
        with write_lock_held(hub.settings):
            waiting = asyncio.create_task(push(client, "held-3"))
            await waiting_longer_than(hub, 0.2)
            second = asyncio.create_task(push(client, "second-3"))
            await asyncio.sleep(0.2)
            assert not second.done()  # it waits with the first, not answered 503
        assert (await waiting).status_code == 200
        assert (await second).status_code == 200


@pytest.mark.slow
def test_the_board_says_the_hub_is_overloaded(
    settings: Settings, chromium_path: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    hub = Hub(with_shed_after(settings, 100))
    hub.shedding.quiet = 0.0
    token = Store(settings.db).run(issue_token, "wall", "viewer")
    with (
        serve_app(create_app(hub)) as url,
        sync_playwright() as p,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        browser = p.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            page = browser.new_page(timezone_id="Asia/Shanghai", locale="en-US")
            page.goto(f"{url}/board?token={token}")
            expect(page.locator("#status")).to_contain_text("live")
            banner = page.locator("#overload")
            expect(banner).to_be_hidden()

            def post(order_id: str) -> httpx.Response:
                body = order_body(order_id=order_id)
                return http.post(URL, content=body, headers=signed(body))

            with ThreadPoolExecutor(1) as pool:
                with write_lock_held(settings):  # released before the pool waits for `held`
                    held = pool.submit(post, "board-held")
                    for _ in range(500):
                        if http.get("/healthz").json()["ingest_oldest_wait_ms"] > 100:
                            break
                        threading.Event().wait(0.01)
                    assert post("board-shed").status_code == 503
                    expect(banner).to_contain_text("OVERLOADED")
                    expect(banner).to_contain_text("1 push answered 503")
                    expect(banner).to_contain_text("(limit 100 ms)")
                    page.screenshot(path=str(tmp_path / "overload.png"))
                    print(f"board screenshot: {tmp_path / 'overload.png'}")
                assert held.result().status_code == 200
            assert post("board-after").status_code == 200  # taken again: the episode ends
            expect(banner).to_contain_text("Last overload")
            expect(banner).to_contain_text("(1 since the hub started)")
            expect(banner.locator(".badge")).to_have_count(0)
        finally:
            browser.close()
