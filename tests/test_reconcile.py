"""Reconciliation end to end against the local platform fake on 127.0.0.1: a missed
push is created once, a pushed change is found as a duplicate, the watermark only
moves on complete pulls, and the scheduled service runs by itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import connectors
from connectors import apiclient
from hub import reconcile
from hub.model import Kind, iso_utc
from hub.runtime import Hub
from hub.settings import Settings, Shop
from hub.settings import load as load_settings
from hub.store import Store, reconcile_sql
from sandbox.fakes.platform_api import FakeOrder, FakePlatformApi
from tests.platform_fake import fake_api, fake_shop, shop_toml, started_store

pytestmark = pytest.mark.anyio

NOW = datetime.now(UTC).replace(microsecond=0)


fake = pytest.fixture(name="fake")(fake_api)


store = pytest.fixture(name="store")(started_store)
shop = fake_shop


def rows(store: Store, sql: str, *args: object) -> list[tuple]:
    return store.run(lambda conn: conn.execute(sql, args).fetchall())


async def test_missed_push_is_created_once_and_recorded(
    fake: tuple[FakePlatformApi, str], store: Store
) -> None:
    api, url = fake
    api.add_order(
        FakeOrder(
            "jd",
            "28000000001",
            "paid",
            NOW - timedelta(minutes=9),
            paid=NOW - timedelta(minutes=8),
            updated=NOW - timedelta(minutes=8),
        )
    )
    jd = shop("jd", url)
    window = (NOW - timedelta(minutes=30), NOW)

    first = await reconcile.reconcile_shop(store, jd, *window)
    assert first.outcome == "ok" and first.new == 2 and first.duplicates == 0
    assert first.new_by_kind == {"created": 1, "paid": 1}

    events = rows(store, "SELECT kind, source, order_id, occurred_at FROM events ORDER BY id")
    assert events == [
        ("created", "reconcile", "28000000001", iso_utc(NOW - timedelta(minutes=9))),
        ("paid", "reconcile", "28000000001", iso_utc(NOW - timedelta(minutes=8))),
    ]
    # the platform's answer is recorded byte for byte, like a push
    (channel, source, body, outcome) = rows(
        store, "SELECT channel, source, body, outcome FROM requests"
    )[0]
    assert (channel, source, outcome) == ("reconcile", "reconcile", "accepted")
    answer = json.loads(body)
    assert answer["jingdong_pop_order_search_responce"]["searchorderinfo_result"]["orderTotal"] == 1

    # the next run sees the same order again: nothing new, and the page of known
    # events is counted, not stored again
    second = await reconcile.reconcile_shop(store, jd, *window)
    assert second.new == 0 and second.duplicates == 2
    assert rows(store, "SELECT count(*) FROM events") == [(2,)]
    assert rows(store, "SELECT count(*) FROM requests") == [(1,)]

    # a page mixing known and new events is recorded; only the new one is created
    api.add_order(FakeOrder("jd", "28000000002", "paid", NOW - timedelta(minutes=7),
                            paid=NOW - timedelta(minutes=6), updated=NOW - timedelta(minutes=6)))  # fmt: skip
    third = await reconcile.reconcile_shop(store, jd, *window)
    assert third.new == 2 and third.duplicates == 2
    # (the request carries the new events; the known ones were only counted)
    assert rows(store, "SELECT outcome, events_new, events_total FROM requests")[-1] == (
        "accepted",
        2,
        2,
    )


async def test_watermark_moves_only_on_complete_live_pulls(
    fake: tuple[FakePlatformApi, str], store: Store
) -> None:
    api, url = fake
    jd = shop("jd", url, api_breaker_failures=1)
    start, end = NOW - timedelta(minutes=10), NOW
    assert (await reconcile.reconcile_shop(store, jd, start, end)).outcome == "ok"
    assert store.run(reconcile_sql.watermark, "acme-jd") == end

    api.fail(1, "http_500")
    later = await reconcile.reconcile_shop(
        store, jd, end - timedelta(minutes=5), end + timedelta(minutes=5)
    )
    assert later.outcome == "failed" and later.error_code == "http_500"
    assert store.run(reconcile_sql.watermark, "acme-jd") == end  # not moved
    runs = store.run(reconcile_sql.runs, "acme-jd")
    assert [r["outcome"] for r in runs] == ["failed", "ok"]
    assert runs[0]["error_code"] == "http_500"

    # the same window again while the circuit is open: no last good answer exists for
    # that query, so the run fails fast and the watermark stays
    again = await reconcile.reconcile_shop(
        store, jd, end - timedelta(minutes=5), end + timedelta(minutes=5)
    )
    assert again.outcome == "failed" and again.error_code == "circuit_open"


def test_advance_refuses_a_detached_window(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    t0 = datetime(2026, 11, 11, tzinfo=UTC)
    assert store.run(reconcile_sql.advance, "s", "jd", 1, t0, t0 + timedelta(hours=1))
    # a manual pull of a later window must not hide the gap before it
    assert not store.run(
        reconcile_sql.advance, "s", "jd", 2, t0 + timedelta(hours=2), t0 + timedelta(hours=3)
    )
    assert store.run(reconcile_sql.watermark, "s") == t0 + timedelta(hours=1)
    # an overlapping one extends it
    assert store.run(
        reconcile_sql.advance, "s", "jd", 3, t0 + timedelta(minutes=55), t0 + timedelta(hours=2)
    )
    assert store.run(reconcile_sql.watermark, "s") == t0 + timedelta(hours=2)


def test_next_window_overlaps_the_watermark() -> None:
    s = Shop("s", "jd", "x", app_key="k", options={"reconcile_overlap_seconds": 120})
    mark = datetime(2026, 11, 11, 1, 0, tzinfo=UTC)
    now = mark + timedelta(minutes=1)
    assert reconcile.next_window(s, mark, now) == (mark - timedelta(minutes=2), now)
    first = reconcile.next_window(s, None, now)
    assert first == (now - timedelta(hours=1), now)  # default lookback on the first run


async def test_service_pulls_jd_on_schedule_and_counts_missed(
    fake: tuple[FakePlatformApi, str], write_config: Callable[[str], Path]
) -> None:
    api, url = fake
    api.add_order(
        FakeOrder(
            "jd",
            "28000000077",
            "shipped",
            NOW - timedelta(minutes=30),
            paid=NOW - timedelta(minutes=29),
            shipped=NOW - timedelta(minutes=2),
            updated=NOW - timedelta(minutes=2),
        )
    )
    settings: Settings = load_settings(
        write_config(shop_toml("jd", url, reconcile_seconds=0.2)),
        env={},
    )
    hub = Hub(settings)
    async with hub.running():
        for _ in range(200):
            done = await hub.store.read(
                lambda c: c.execute(
                    "SELECT count(*) FROM reconcile_runs WHERE outcome='ok'"
                ).fetchone()[0]
            )
            if done >= 2:
                break
            await asyncio.sleep(0.05)
        kinds = await hub.store.read(
            lambda c: c.execute("SELECT kind FROM events ORDER BY id").fetchall()
        )
        metrics = hub.metrics.render().decode()
        assert "jd" in apiclient.loop_runtimes()
    assert done >= 2
    # the hub's stop closed the shared API client of its loop
    assert apiclient.loop_runtimes() == {}
    assert [k for (k,) in kinds] == ["created", "paid", "shipped"]
    assert (
        'orderhook_reconcile_events_total{platform="jd",result="new",shop="acme-jd"} 3.0' in metrics
    )
    # the order itself moved to shipped through the normal post-commit stage
    status = Store(settings.db).run(
        lambda c: c.execute("SELECT status FROM orders WHERE order_id='28000000077'").fetchone()
    )
    assert status == ("shipped",)


async def test_jd_push_is_refused_with_a_clear_reason(
    write_config: Callable[[str], Path],
) -> None:
    import httpx

    from hub.app import create_app

    settings = load_settings(
        write_config('[shops.acme-jd]\nplatform = "jd"\nsecret = "s"\napp_key = "k"\n'), env={}
    )
    # no stages: the shop's reconciliation would call api.jd.com (this is about pushes)
    hub = Hub(settings, services=[])
    async with hub.running():
        transport = httpx.ASGITransport(app=create_app(hub, lifespan=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            response = await http.post("/webhooks/jd/acme-jd", content=b"{}")
    assert response.status_code == 404
    assert response.json()["error"]["reason"] == "push_not_supported"
    assert "jingdong.pop.order.search" in response.json()["error"]["detail"]
    recorded = Store(settings.db).run(
        lambda c: c.execute("SELECT outcome, reason FROM requests").fetchall()
    )
    assert recorded == [("rejected", "push_not_supported")]


async def test_real_douyin_push_then_reconcile_finds_it_duplicate(
    fake: tuple[FakePlatformApi, str], write_config: Callable[[str], Path]
) -> None:
    """A signed push through the real ingest path, then the poll: only what the push
    did not deliver is new."""
    import httpx

    import connectors
    from hub.app import create_app

    api, url = fake
    created, paid = NOW - timedelta(minutes=20), NOW - timedelta(minutes=19)
    order_id = "6920000000000000077"
    api.add_order(FakeOrder("douyin", order_id, "paid", created, paid=paid, updated=paid))
    settings = load_settings(
        write_config(shop_toml("douyin", url, reconcile=False)),
        env={},
    )
    douyin_shop = settings.shops["acme-douyin"]
    # the push carries its own time for the change (7 s after the order's pay_time):
    # the same transition all the same, so the poll must not call it missed
    push = connectors.get("douyin").simulate(  # type: ignore[union-attr]
        douyin_shop,
        Kind.PAID,
        order_id,
        occurred_at=paid + timedelta(seconds=7),
        message_id="m-paid-1",
    )
    hub = Hub(settings)
    async with hub.running():
        transport = httpx.ASGITransport(app=create_app(hub, lifespan=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            response = await http.post(
                "/webhooks/douyin/acme-douyin", content=push.body, headers=push.headers
            )
        assert response.json() == {"code": 0, "msg": "success"}
        result = await reconcile.reconcile_shop(
            hub.store, douyin_shop, NOW - timedelta(hours=1), NOW, metrics=hub.metrics
        )
        events = await hub.store.read(
            lambda c: c.execute("SELECT kind, source FROM events ORDER BY id").fetchall()
        )
    assert result.seen == 2 and result.duplicates == 1 and result.new == 1
    assert [(e["order_id"], e["kind"]) for e in result.missed] == [(order_id, "created")]
    assert events == [("paid", "push"), ("created", "reconcile")]


def test_bad_api_option_fails_the_config_with_its_line(
    write_config: Callable[[str], Path],
) -> None:
    from hub.settings import ConfigError

    with pytest.raises(ConfigError, match=r"orderhook.toml:\d+: .*options.api_rate: 'fast'"):
        load_settings(write_config(shop_toml("jd", "http://x", api_rate="fast")), env={})
    with pytest.raises(ConfigError, match=r"options\.sign_method: 'hmac-sha256' is not one of"):
        load_settings(write_config(shop_toml("jd", "http://x", sign_method="hmac-sha256")), env={})


async def test_shop_with_bad_reconcile_option_is_skipped_with_a_reason(
    fake: tuple[FakePlatformApi, str],
    write_config: Callable[[str], Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _api, url = fake
    settings = load_settings(write_config(shop_toml("jd", url, reconcile_seconds=-5)), env={})
    hub = Hub(settings)
    async with hub.running():
        await asyncio.sleep(0.2)
    assert "reconcile disabled for shop acme-jd: options.reconcile_seconds: -5" in caplog.text
    assert Store(settings.db).run(reconcile_sql.runs) == []


async def test_unreadable_order_row_is_recorded_not_blocking(store: Store) -> None:
    import httpx
    import respx

    answer = {
        "jingdong_pop_order_search_responce": {
            "code": "0",
            "searchorderinfo_result": {
                "orderTotal": 2,
                "apiResult": {"success": True},
                "orderInfoList": [
                    {"orderState": "WAIT_SELLER_STOCK_OUT"},  # no orderId
                    {"orderId": "28000000099", "orderState": "WAIT_SELLER_STOCK_OUT",
                     "orderStartTime": "2026-11-11 00:00:01",
                     "paymentConfirmTime": "2026-11-11 00:00:09", "orderPayment": "9.90"},
                ],
            },
        }
    }  # fmt: skip
    jd = shop("jd", "http://jd.test")
    with respx.mock(base_url="http://jd.test") as mock:
        mock.post("/routerjson").mock(return_value=httpx.Response(200, json=answer))
        client = connectors.api_client(jd, transport=httpx.AsyncHTTPTransport())
        start = datetime(2026, 11, 10, 16, 0, tzinfo=UTC)
        result = await reconcile.reconcile_shop(
            store, jd, start, start + timedelta(minutes=30), client=client
        )
        await client.aclose()
    assert result.outcome == "ok" and result.new == 2 and result.bad_rows == 1
    assert result.error_code == "unreadable_rows"
    assert store.run(reconcile_sql.watermark, "acme-jd") == start + timedelta(minutes=30)
    (reason, detail, body) = rows(store, "SELECT reason, detail, body FROM requests")[0]
    assert reason == "unreadable_rows" and detail == "1 order row(s) could not be read"
    assert json.loads(body) == answer  # the evidence, byte for byte


async def test_api_shows_runs_watermarks_and_breakers(
    fake: tuple[FakePlatformApi, str], write_config: Callable[[str], Path]
) -> None:
    import httpx

    from hub.app import create_app
    from hub.auth import issue_token

    api, url = fake
    api.add_order(FakeOrder("jd", "28000000123", "paid", NOW - timedelta(minutes=3),
                            paid=NOW - timedelta(minutes=2), updated=NOW - timedelta(minutes=2)))  # fmt: skip
    settings = load_settings(
        write_config(shop_toml("jd", url, reconcile=False, api_breaker_failures=1)), env={}
    )
    viewer = Store(settings.db).run(issue_token, "vera", "viewer")
    picker = Store(settings.db).run(issue_token, "pia", "picker")
    hub = Hub(settings)
    async with hub.running():
        jd = settings.shops["acme-jd"]
        await reconcile.reconcile_shop(hub.store, jd, NOW - timedelta(minutes=10), NOW)
        api.fail(1, "http_503")
        await reconcile.reconcile_shop(hub.store, jd, NOW, NOW + timedelta(minutes=1))
        transport = httpx.ASGITransport(app=create_app(hub, lifespan=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            auth = {"authorization": f"Bearer {viewer}"}
            runs = (await http.get("/api/reconcile?shop=acme-jd", headers=auth)).json()
            health = (await http.get("/api/platform-apis", headers=auth)).json()
            bad = await http.get("/api/reconcile?limit=many", headers=auth)
            denied = await http.get(
                "/api/platform-apis", headers={"authorization": f"Bearer {picker}"}
            )
    assert [r["outcome"] for r in runs["runs"]] == ["failed", "ok"]
    assert runs["runs"][1]["events_new"] == 2
    assert runs["shops"][0]["watermark"] == iso_utc(NOW)
    jd_health = next(p for p in health["platforms"] if p["platform"] == "jd")
    assert jd_health["breaker"] == "open" and "http_503" in jd_health["last_error"]
    assert bad.status_code == 400 and bad.json()["error"]["reason"] == "bad_query"
    assert denied.status_code == 403


async def test_service_follows_a_reloaded_config(
    fake: tuple[FakePlatformApi, str],
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses

    monkeypatch.setattr(reconcile, "RESCAN_SECONDS", 0.05)
    api, url = fake
    api.add_order(FakeOrder("jd", "28000000555", "paid", NOW - timedelta(minutes=3),
                            paid=NOW - timedelta(minutes=2), updated=NOW - timedelta(minutes=2)))  # fmt: skip
    settings = load_settings(write_config(""), env={})  # no JD shop yet
    later = load_settings(write_config(shop_toml("jd", url, reconcile_seconds=0.1)), env={})
    hub = Hub(settings)
    async with hub.running():
        await asyncio.sleep(0.1)
        assert await hub.store.read(reconcile_sql.runs) == []
        hub.settings = dataclasses.replace(settings, shops=later.shops)  # a config reload
        for _ in range(200):
            runs = await hub.store.read(reconcile_sql.runs)
            if any(r["outcome"] == "ok" for r in runs):
                break
            await asyncio.sleep(0.05)
    first = runs[-1]  # runs come newest first: this is the first one
    assert first["shop"] == "acme-jd" and first["outcome"] == "ok" and first["events_new"] == 2
