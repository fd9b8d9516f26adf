"""Platform API clients: each platform's error shape into typed errors (respx), ship
and the incremental query against the local fake on a real loopback server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

import connectors
from connectors.base import AuthExpired, InvalidParameter, PlatformBusy, RateLimited
from hub.model import Kind
from hub.settings import Shop
from sandbox.fakes.platform_api import FakeOrder, FakePlatformApi
from tests.platform_fake import PLATFORMS, fake_api

pytestmark = pytest.mark.anyio

BASE = "http://fake.test"


def make_shop(platform: str, base: str = BASE, **options: Any) -> Shop:
    return Shop(
        name=f"shop-{platform}",
        platform=platform,
        secret=f"{platform}-secret",
        app_key=f"{platform}-key",
        api_base=base,
        options={"access_token": "tok", **options},
    )


fake = pytest.fixture(name="fake")(fake_api)


# --- error shapes -------------------------------------------------------------------

ERRORS = [
    # Taobao TOP: error_response{code, msg, sub_code, sub_msg}
    ("taobao", 200, {"error_response": {"code": 7, "msg": "App Call Limited",
     "sub_msg": "This ban will last for 12 more seconds"}}, RateLimited, "7"),
    ("taobao", 200, {"error_response": {"code": 27, "msg": "Invalid session"}}, AuthExpired, "27"),
    ("taobao", 200, {"error_response": {"code": 15, "msg": "Remote service error",
     "sub_code": "isp.remote-service-timeout"}}, PlatformBusy, "15:isp.remote-service-timeout"),
    ("taobao", 200, {"error_response": {"code": 41, "msg": "Invalid Arguments",
     "sub_code": "isv.invalid-parameter"}}, InvalidParameter, "41:isv.invalid-parameter"),
    # an HTTP 429 is a rate limit whatever the body says
    ("taobao", 429, {"error_response": {"code": 41, "msg": "x"}}, RateLimited, "http_429"),
    # JD: error_response{code, zh_desc, en_desc}; business apiResult.success=false
    ("jd", 200, {"error_response": {"code": "2", "zh_desc": "调用次数超限"}}, RateLimited, "2"),
    ("jd", 200, {"error_response": {"code": "12", "zh_desc": "签名无效"}}, InvalidParameter, "12"),
    ("jd", 200, {"jingdong_pop_order_search_responce": {"searchorderinfo_result": {
        "apiResult": {"success": False, "englishErrCode": "param error",
                      "chineseErrCode": "参数错误"}}}}, InvalidParameter, "param error"),
    # Douyin: code/sub_code at the top level, 10000 = success
    ("douyin", 200, {"code": 60000, "msg": "限流", "sub_code": "isv.traffic-limited"},
     RateLimited, "60000:isv.traffic-limited"),
    ("douyin", 200, {"code": 40003, "msg": "x", "sub_code": "isv.access-token-expired"},
     AuthExpired, "40003:isv.access-token-expired"),
    ("douyin", 200, {"code": 20000, "msg": "x", "sub_code": "dop.service-error"},
     PlatformBusy, "20000:dop.service-error"),
    ("douyin", 200, {"code": 40002, "msg": "x", "sub_code": "isv.parameter-missing:order_id"},
     InvalidParameter, "40002:isv.parameter-missing:order_id"),
    # Pinduoduo: error_response{error_code, error_msg, sub_code, sub_msg}
    ("pinduoduo", 200, {"error_response": {"error_code": 10019, "error_msg": "access_token已过期"}},
     AuthExpired, "10019"),
    ("pinduoduo", 200, {"error_response": {"error_code": 50001,
     "error_msg": "时间跨度不能超过24小时", "sub_code": None}}, InvalidParameter, "50001"),
    ("pinduoduo", 429, {"error_response": {"error_code": 0, "error_msg": "too many"}},
     RateLimited, "0"),
]  # fmt: skip


@pytest.mark.parametrize(("platform", "status", "body", "error", "code"), ERRORS)
async def test_platform_error_shape_becomes_a_typed_error(
    platform: str, status: int, body: dict[str, Any], error: type, code: str
) -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as mock:
        mock.post(url__regex=r".*").mock(return_value=httpx.Response(status, json=body))
        client = connectors.api_client(make_shop(platform), transport=httpx.AsyncHTTPTransport())
        try:
            with pytest.raises(error) as caught:
                await client.ship("1001", "SF", "SF1001")
        finally:
            await client.aclose()
    assert caught.value.code == code
    # the outbox decides on this flag: retry later, or stop and tell a person
    assert caught.value.retryable is (error in (RateLimited, PlatformBusy))


async def test_rate_limit_ban_seconds_become_retry_after() -> None:
    body = {"error_response": {"code": 7, "msg": "App Call Limited",
            "sub_msg": "This ban will last for 12 more seconds"}}  # fmt: skip
    with respx.mock(base_url=BASE) as mock:
        mock.post("/router/rest").mock(return_value=httpx.Response(200, json=body))
        client = connectors.api_client(make_shop("taobao"), transport=httpx.AsyncHTTPTransport())
        with pytest.raises(RateLimited) as caught:
            await client.ship("1", "SF", "x")
        # the platform's ban also holds back our own next calls
        assert client.runtime.bucket.try_acquire() > 10
        await client.aclose()
    assert caught.value.retry_after == 12.0


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_5xx_timeout_and_garbage_are_platform_busy(platform: str) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post(url__regex=r".*")
        route.side_effect = [
            httpx.Response(502, text="bad gateway"),
            httpx.ReadTimeout("slow"),
            httpx.Response(200, text="<html>maintenance</html>"),
        ]
        client = connectors.api_client(make_shop(platform), transport=httpx.AsyncHTTPTransport())
        codes = []
        for _ in range(3):
            with pytest.raises(PlatformBusy) as caught:
                await client.ship("1", "SF", "x")
            codes.append(caught.value.code)
        await client.aclose()
    assert codes == ["http_502", "timeout", "http_200"]


# --- against the fake, on a real socket -----------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_ship_reaches_the_platform_signed(
    platform: str, fake: tuple[FakePlatformApi, str]
) -> None:
    api, url = fake
    now = datetime.now(UTC).replace(microsecond=0)
    api.add_order(FakeOrder(platform, "4000000000000000001", "paid", now, paid=now))
    client = connectors.api_client(make_shop(platform, url))
    try:
        result = await client.ship("4000000000000000001", "SF", "SF1234567890")
    finally:
        await client.aclose()
    assert result.ok
    assert api.calls[-1]["signed"], api.calls[-1]
    assert api.shipments == [
        {"platform": platform, "order_id": "4000000000000000001", "carrier": "SF",
         "tracking": "SF1234567890"}
    ]  # fmt: skip


async def test_ship_of_unknown_order_is_invalid_parameter(
    fake: tuple[FakePlatformApi, str],
) -> None:
    _api, url = fake
    client = connectors.api_client(make_shop("taobao", url))
    with pytest.raises(InvalidParameter, match="not_shipped"):
        await client.ship("999", "SF", "x")
    await client.aclose()


async def test_wrong_secret_is_refused_by_the_fake(fake: tuple[FakePlatformApi, str]) -> None:
    # the fake checks signatures: a shop with a secret the platform does not know fails
    _api, url = fake
    shop = Shop("bad", "douyin", "not-the-secret", app_key="douyin-key", api_base=url)
    client = connectors.api_client(shop)
    with pytest.raises(InvalidParameter, match="signature-invalid"):
        await client.ship("1", "SF", "x")
    await client.aclose()


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_changed_orders_pages_every_window(
    platform: str, fake: tuple[FakePlatformApi, str]
) -> None:
    api, url = fake
    start = datetime(2026, 11, 10, 16, 0, tzinfo=UTC)  # 2026-11-11 00:00 Beijing
    # 230 orders paid over 38 minutes: two 30-minute windows, the first one 2 pages
    for i in range(230):
        created = start + timedelta(seconds=10 * i)
        api.add_order(
            FakeOrder(
                platform,
                f"{9_100_000_000_000_000_000 + i}",
                "paid",
                created,
                paid=created + timedelta(seconds=5),
                updated=created + timedelta(seconds=5),
                amount=Decimal("19.90"),
            )
        )
    client = connectors.api_client(make_shop(platform, url))
    try:
        events = [e async for e in client.changed_orders(start, start + timedelta(hours=2))]
    finally:
        await client.aclose()
    paid = {e.order_id: e for e in events if e.kind is Kind.PAID}
    created = {e.order_id for e in events if e.kind is Kind.CREATED}
    assert len(paid) == 230 and len(created) == 230
    first = paid["9100000000000000000"]  # 19 digits, exact
    assert first.occurred_at == start + timedelta(seconds=5)  # Beijing wall time -> UTC
    assert first.amount == Decimal("19.90") and first.currency == "CNY"
    assert first.source == "reconcile" and first.dedupe_key.startswith("h:")
    assert all(call["signed"] for call in api.calls)
    # Taobao: one 1-day window of 3 pages; the others: four 30-minute windows of
    # 2, 1, 1 (empty) and 1 (empty) pages
    assert len(api.calls) == (3 if platform == "taobao" else 5)


# --- state -> canonical events, per platform (the table in docs/connectors/api-clients.md)

T0 = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)
CREATED, PAID, SHIPPED, CLOSED = (T0 + timedelta(minutes=m) for m in (0, 1, 5, 9))

EXPECTED_KINDS = {
    # (platform, state): kinds with their times, in order
    ("taobao", "created"): [("created", CREATED)],
    ("taobao", "paid"): [("created", CREATED), ("paid", PAID)],
    ("taobao", "shipped"): [("created", CREATED), ("paid", PAID), ("shipped", SHIPPED)],
    ("taobao", "cancelled"): [("created", CREATED), ("cancelled", CLOSED)],
    ("taobao", "refunded"): [("created", CREATED), ("paid", PAID), ("refunded", CLOSED)],
    ("jd", "paid"): [("created", CREATED), ("paid", PAID)],
    ("jd", "shipped"): [("created", CREATED), ("paid", PAID), ("shipped", CLOSED)],
    ("jd", "cancelled"): [("created", CREATED), ("cancelled", CLOSED)],
    ("douyin", "created"): [("created", CREATED)],
    ("douyin", "paid"): [("created", CREATED), ("paid", PAID)],
    ("douyin", "shipped"): [("created", CREATED), ("paid", PAID), ("shipped", SHIPPED)],
    ("douyin", "cancelled"): [("created", CREATED), ("cancelled", CLOSED)],
    ("pinduoduo", "created"): [("created", CREATED)],
    ("pinduoduo", "paid"): [("created", CREATED), ("paid", PAID)],
    ("pinduoduo", "shipped"): [("created", CREATED), ("paid", PAID), ("shipped", SHIPPED)],
    ("pinduoduo", "cancelled"): [("created", CREATED), ("cancelled", CLOSED)],
    ("pinduoduo", "refunded"): [("created", CREATED), ("paid", PAID), ("refunded", CLOSED)],
}


@pytest.mark.parametrize(("platform", "state"), sorted(EXPECTED_KINDS))
async def test_order_state_maps_to_canonical_events(
    platform: str, state: str, fake: tuple[FakePlatformApi, str]
) -> None:
    api, url = fake
    paid = PAID if state not in ("created", "cancelled") else None
    shipped = SHIPPED if state == "shipped" else None
    closed = CLOSED if state in ("cancelled", "refunded") else None
    order = FakeOrder(platform, "5000000000000000001", state, CREATED, paid=paid,
                      shipped=shipped, closed=closed, updated=CLOSED)  # fmt: skip
    api.add_order(order)
    client = connectors.api_client(make_shop(platform, url))
    try:
        events = [e async for e in client.changed_orders(T0, T0 + timedelta(minutes=30))]
    finally:
        await client.aclose()
    assert [(e.kind.value, e.occurred_at) for e in events] == EXPECTED_KINDS[(platform, state)]
    assert {e.order_id for e in events} == {"5000000000000000001"}


async def test_jd_splits_a_window_instead_of_paging_deep(
    fake: tuple[FakePlatformApi, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.jd import api as jd_api

    monkeypatch.setattr(jd_api.Client, "max_pages", 1)
    api, url = fake
    for i in range(150):  # 150 changes in 10 minutes: more than one page of 100
        at = T0 + timedelta(seconds=4 * i)
        api.add_order(FakeOrder("jd", f"{30_000_000 + i}", "paid", at, paid=at, updated=at))
    client = connectors.api_client(make_shop("jd", url))
    try:
        events = [e async for e in client.changed_orders(T0, T0 + timedelta(minutes=30))]
    finally:
        await client.aclose()
    assert len({e.order_id for e in events if e.kind is Kind.PAID}) == 150
    assert len(events) == 300  # created + paid each, none twice
    pages = {c["params"]["360buy_param_json"] for c in api.calls}
    windows = {(json.loads(p)["start_date"], json.loads(p)["end_date"]) for p in pages}
    assert len(windows) > 2  # the 30-minute window was cut smaller
    assert all(json.loads(p)["page"] == "1" for p in pages)  # never past page 1
