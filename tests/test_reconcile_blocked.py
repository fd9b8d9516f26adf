"""A shop whose pulls need a person (no token, an expired one, refused credentials)
is blocked, not failed every minute: its tries back off, the log says it once, the
state says why, and a fixed config resumes it at once. A transient failure keeps the
interval. Against the platform fake on 127.0.0.1; the shop loop's sleep is injected,
so time never has to pass."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import connectors
from hub import reconcile
from hub.model import parse_iso
from hub.runtime import Hub
from hub.settings import Shop
from hub.settings import load as load_settings
from hub.store import Store, reconcile_sql
from sandbox.fakes.platform_api import FakeOrder, FakePlatformApi
from tests.platform_fake import PLATFORMS, fake_api, fake_shop, shop_toml, started_store

pytestmark = pytest.mark.anyio

NOW = datetime.now(UTC).replace(microsecond=0)
TOKEN_VAR = "ORDERHOOK_TEST_RECONCILE_TOKEN"

fake = pytest.fixture(name="fake")(fake_api)


store = pytest.fixture(name="store")(started_store)


class Enough(Exception):
    """Ends a shop loop from its sleep once the test has seen enough tries."""


class Waits:
    """Stands in for asyncio.sleep in the shop loop: records each wait, runs `between`
    (the person fixing things) after it, and ends the loop after `tries` waits."""

    def __init__(self, tries: int, between: Callable[[int], None] | None = None) -> None:
        self.tries = tries
        self.between = between
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        if self.between is not None:
            self.between(len(self.seconds))
        if len(self.seconds) >= self.tries:
            raise Enough
        await asyncio.sleep(0)


def jd_shop(url: str, **options: Any) -> Shop:
    return fake_shop("jd", url, reconcile_seconds=60, **options)


def state(store: Store, shop: str) -> dict[str, Any]:
    return next(s for s in store.run(reconcile_sql.states) if s["shop"] == shop)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "orderhook.reconcile" and r.levelno >= logging.ERROR
    ]


async def run_loop(hub: Hub, shop: Shop, waits: Waits) -> None:
    with pytest.raises(Enough):
        await reconcile._shop_loop(hub, shop, sleep=waits)


async def test_shop_without_token_backs_off_and_says_so_once(
    fake: tuple[FakePlatformApi, str],
    hub: Hub,
    client: httpx.AsyncClient,
    admin_token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, url = fake
    monkeypatch.delenv(TOKEN_VAR, raising=False)
    shop = jd_shop(url, access_token=f"env:{TOKEN_VAR}", reconcile_backoff_max_seconds=600)
    waits = Waits(tries=5)

    await run_loop(hub, shop, waits)

    # twice the interval, doubling, capped: 5 tries in ~24 min instead of 24 of them
    assert waits.seconds == [120, 240, 480, 600, 600]
    runs = await hub.store.read(reconcile_sql.runs, "acme-jd")
    assert [(r["outcome"], r["error_code"]) for r in runs] == [("failed", "missing_token")] * 5
    assert api.calls == []  # nothing is sent without a token
    blocked = state(hub.store, "acme-jd")["blocked"]
    assert blocked["code"] == "missing_token" and blocked["tries"] == 5
    assert TOKEN_VAR in blocked["error"]
    assert blocked["since"] < runs[-2]["started_at"]  # the first try's time, kept
    wait = parse_iso(blocked["next_try_at"]) - parse_iso(runs[0]["finished_at"])
    assert timedelta(seconds=590) < wait <= timedelta(seconds=601)
    assert state(hub.store, "acme-jd")["watermark"] is None
    # what /api/reconcile (and the board) show for the shop
    answer = await client.get(
        "/api/reconcile?shop=acme-jd", headers={"authorization": f"Bearer {admin_token}"}
    )
    (shown,) = answer.json()["shops"]
    assert shown["shop"] == "acme-jd" and shown["watermark"] is None
    assert shown["blocked"] == blocked

    # one line for the five tries, saying what to do
    (line,) = errors(caplog)
    assert "reconcile blocked for shop acme-jd (jd): missing_token" in line
    assert TOKEN_VAR in line and "restart the hub" in line
    metrics = hub.metrics.render().decode()
    assert (
        'orderhook_reconcile_runs_total{outcome="failed",platform="jd",shop="acme-jd"} 5.0'
        in metrics
    )
    assert 'orderhook_reconcile_blocked{platform="jd",shop="acme-jd"} 1.0' in metrics  # alerts


async def test_a_manual_run_on_a_blocked_shop_keeps_the_hubs_next_try(
    fake: tuple[FakePlatformApi, str], hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, url = fake
    monkeypatch.delenv(TOKEN_VAR, raising=False)
    shop = jd_shop(url, access_token=f"env:{TOKEN_VAR}")
    await run_loop(hub, shop, Waits(tries=1))
    before = state(hub.store, "acme-jd")["blocked"]
    assert before["next_try_at"] is not None

    # what `orderhook reconcile` does: one pull, outside the hub's own schedule
    result = await reconcile.reconcile_shop(hub.store, shop, NOW - timedelta(hours=1), NOW)

    assert result.blocked
    after = state(hub.store, "acme-jd")["blocked"]
    assert after["tries"] == 2
    assert after["next_try_at"] == before["next_try_at"]  # still when the hub tries
    assert api.calls == []


async def test_blocked_shop_resumes_when_the_token_appears(
    fake: tuple[FakePlatformApi, str],
    hub: Hub,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, url = fake
    api.add_order(FakeOrder("jd", "28000000301", "paid", NOW - timedelta(minutes=5),
                            paid=NOW - timedelta(minutes=4), updated=NOW - timedelta(minutes=4)))  # fmt: skip
    monkeypatch.delenv(TOKEN_VAR, raising=False)
    shop = jd_shop(url, access_token=f"env:{TOKEN_VAR}")

    def person(waited: int) -> None:
        if waited == 2:
            monkeypatch.setenv(TOKEN_VAR, "tok")

    waits = Waits(tries=4, between=person)
    caplog.set_level(logging.INFO, "orderhook.reconcile")
    await run_loop(hub, shop, waits)

    # blocked twice, then pulled, then back to the interval
    assert waits.seconds == [120, 240, 60, 60]
    runs = await hub.store.read(reconcile_sql.runs, "acme-jd")
    assert [r["outcome"] for r in runs] == ["ok", "ok", "failed", "failed"]
    assert runs[1]["events_new"] == 2
    assert state(hub.store, "acme-jd")["blocked"] is None
    assert len(errors(caplog)) == 1
    assert "reconcile resumed for shop acme-jd (blocked since" in caplog.text
    assert "by missing_token, 2 tries" in caplog.text
    metrics = hub.metrics.render().decode()
    assert 'orderhook_reconcile_blocked{platform="jd",shop="acme-jd"} 0.0' in metrics


async def test_transient_failures_keep_the_interval(
    fake: tuple[FakePlatformApi, str],
    hub: Hub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, url = fake
    shop = jd_shop(url, api_breaker_failures=10)
    for fault in ("http_503", "http_500", "rate_limited"):
        api.fail(1, fault)
    waits = Waits(tries=4)

    await run_loop(hub, shop, waits)

    assert waits.seconds == [60, 60, 60, 60]
    runs = await hub.store.read(reconcile_sql.runs, "acme-jd")
    assert [(r["outcome"], r["error_code"]) for r in runs] == [
        ("ok", None),
        ("failed", "2"),  # JD's call-limit code: rate limited
        ("failed", "http_500"),
        ("failed", "http_503"),
    ]
    assert state(hub.store, "acme-jd")["blocked"] is None
    assert errors(caplog) == []


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_each_platforms_refusals_block_and_busy_answers_do_not(
    platform: str, fake: tuple[FakePlatformApi, str], store: Store
) -> None:
    """The platform's own answers, read by its client: an expired token or a refused
    signature blocks the shop; a 5xx or a rate limit does not touch the block."""
    api, url = fake
    good = fake_shop(platform, url, api_breaker_failures=10)
    wrong_secret = dataclasses.replace(good, secret="not-the-secret")
    window = (NOW - timedelta(minutes=10), NOW)

    async def pull(shop: Shop, fault: str | None = None) -> reconcile.RunResult:
        if fault:
            api.fail(1, fault)
        if fault != "rate_limited":
            return await reconcile.reconcile_shop(store, shop, *window)
        # a client of its own: the shared one would wait out the rate limit next call
        client = connectors.api_client(shop, transport=httpx.AsyncHTTPTransport())
        try:
            return await reconcile.reconcile_shop(store, shop, *window, client=client)
        finally:
            await client.aclose()

    expired = await pull(good, "auth_expired")
    again = await pull(good, "auth_expired")
    assert expired.blocked and again.blocked and again.blocked_tries == 2
    first = state(store, good.name)["blocked"]
    assert first["code"] == expired.error_code and first["tries"] == 2

    for fault in ("http_503", "rate_limited"):
        busy = await pull(good, fault)
        assert busy.outcome == "failed" and not busy.blocked
    assert state(store, good.name)["blocked"] == first  # a blip neither clears nor adds

    refused = await pull(wrong_secret)
    assert refused.blocked
    now_blocked = state(store, good.name)["blocked"]
    assert now_blocked["code"] == refused.error_code and now_blocked["error"] == refused.error
    if refused.error_code == expired.error_code:  # the fake's JD answers both with 12
        assert now_blocked["tries"] == 3 and now_blocked["since"] == first["since"]
    else:  # another error starts another block
        assert now_blocked["tries"] == 1 and now_blocked["since"] > first["since"]

    ok = await pull(good)
    assert ok.outcome == "ok" and not ok.blocked
    assert ok.unblocked == {
        "since": now_blocked["since"],
        "code": refused.error_code,
        "tries": now_blocked["tries"],
    }
    assert state(store, good.name)["blocked"] is None


async def test_config_reload_with_the_token_resumes_at_once(
    fake: tuple[FakePlatformApi, str],
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The service, not the loop alone: blocked with a 2-minute wait ahead, it pulls as
    soon as the reloaded config gives the shop its token."""
    monkeypatch.setattr(reconcile, "RESCAN_SECONDS", 0.05)
    monkeypatch.delenv(TOKEN_VAR, raising=False)
    api, url = fake
    api.add_order(FakeOrder("jd", "28000000302", "paid", NOW - timedelta(minutes=3),
                            paid=NOW - timedelta(minutes=2), updated=NOW - timedelta(minutes=2)))  # fmt: skip
    settings = load_settings(write_config(shop_toml("jd", url, reconcile_seconds=60)), env={})
    settings.shops["acme-jd"].options["access_token"] = f"env:{TOKEN_VAR}"
    fixed = load_settings(write_config(shop_toml("jd", url, reconcile_seconds=60)), env={})
    caplog.set_level(logging.INFO, "orderhook.reconcile")
    hub = Hub(settings)

    async def until(check: Callable[[], Awaitable[bool]]) -> None:
        for _ in range(200):
            if await check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the service never got there")

    async def blocked() -> bool:
        states = await hub.store.read(reconcile_sql.states)
        return any(s["blocked"] and s["blocked"]["next_try_at"] for s in states)

    async def pulled() -> bool:
        # The run's row commits before its loop logs the resumption: wait for both.
        runs = await hub.store.read(reconcile_sql.runs, "acme-jd")
        said = "reconcile resumed for shop acme-jd" in caplog.text
        return said and any(r["outcome"] == "ok" for r in runs)

    async with hub.running():
        await until(blocked)
        hub.settings = dataclasses.replace(settings, shops=fixed.shops)  # the reload
        await until(pulled)
        runs = await hub.store.read(reconcile_sql.runs, "acme-jd")
        shops = await hub.store.read(reconcile_sql.states)
    assert [(r["outcome"], r["error_code"]) for r in runs] == [
        ("ok", None),
        ("failed", "missing_token"),
    ]
    assert runs[0]["events_new"] == 2
    assert shops[0]["blocked"] is None and shops[0]["watermark"] is not None


def test_backoff_doubles_from_twice_the_interval_up_to_the_ceiling() -> None:
    assert [reconcile.backoff(60, 1800, n) for n in range(1, 7)] == [
        120,
        240,
        480,
        960,
        1800,
        1800,
    ]
    assert reconcile.backoff(60, 30, 3) == 60  # a ceiling under the interval is the interval
    assert reconcile.backoff(60, 1800, 10_000) == 1800  # no overflow after days blocked


def test_bad_backoff_option_is_refused_with_its_name() -> None:
    shop = Shop("s", "jd", "x", app_key="k", options={"reconcile_backoff_max_seconds": 0})
    with pytest.raises(ValueError, match=r"options\.reconcile_backoff_max_seconds: 0 must be"):
        reconcile.check_shop(shop)
