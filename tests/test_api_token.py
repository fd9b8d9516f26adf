"""A shop with no seller token configured: the calls a platform source says need one
fail `missing_token` (saying which option to set) before anything is sent, and a
reconcile run for such a shop ends blocked with that code. The calls no source says
it for still go out as before. Against the platform fake on 127.0.0.1."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import connectors
from connectors.apiclient import BreakerState
from connectors.base import AuthExpired
from hub import reconcile
from hub.settings import Shop
from hub.store import Store, reconcile_sql
from sandbox.fakes.platform_api import FakeOrder, FakePlatformApi
from tests.platform_fake import fake_api, fake_shop, started_store

pytestmark = pytest.mark.anyio

NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = (NOW - timedelta(minutes=10), NOW)
UNSET_VAR = "ORDERHOOK_TEST_TOKEN_NEVER_SET"

fake = pytest.fixture(name="fake")(fake_api)
store = pytest.fixture(name="store")(started_store)

# (platform, call, the options that would hold the token) where a source says the
# seller's token is needed: docs/connectors/api-clients.md "The seller's token"
NEEDS_TOKEN = [
    ("taobao", "changed_orders", "options.session or options.access_token"),
    ("pinduoduo", "changed_orders", "options.access_token"),
    ("pinduoduo", "ship", "options.access_token"),
]
# where no source read says so: left to the platform's own answer
LEFT_ALONE = [
    ("taobao", "ship"),
    ("jd", "changed_orders"),
    ("jd", "ship"),
    ("douyin", "changed_orders"),
    ("douyin", "ship"),
]
ORDER_IDS = {"taobao": "3300000001", "jd": "28000000401", "douyin": "6900000001",
             "pinduoduo": "231125-000000001"}  # fmt: skip


def without_token(shop: Shop, **options: Any) -> Shop:
    kept = {k: v for k, v in shop.options.items() if k not in ("access_token", "session")}
    return dataclasses.replace(shop, options={**kept, **options})


def paid_order(api: FakePlatformApi, platform: str) -> FakeOrder:
    return api.add_order(FakeOrder(platform, ORDER_IDS[platform], "paid",
                                   NOW - timedelta(minutes=5), paid=NOW - timedelta(minutes=4),
                                   updated=NOW - timedelta(minutes=4)))  # fmt: skip


async def make_call(shop: Shop, call: str) -> Any:
    client = connectors.api_client(shop)
    try:
        if call == "ship":
            return await client.ship(ORDER_IDS[shop.platform], "SF", "SF1234567890")
        return [event async for event in client.changed_orders(*WINDOW)]
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "unset",
    [{}, {"access_token": ""}, {"access_token": f"env:{UNSET_VAR}"}],
    ids=["no-option", "empty", "env-unset"],
)
@pytest.mark.parametrize(("platform", "call", "option"), NEEDS_TOKEN)
async def test_a_call_that_needs_the_token_is_not_sent_without_one(
    platform: str,
    call: str,
    option: str,
    unset: dict[str, str],
    fake: tuple[FakePlatformApi, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, url = fake
    monkeypatch.delenv(UNSET_VAR, raising=False)
    order = paid_order(api, platform)
    shop = without_token(fake_shop(platform, url), **unset)

    with pytest.raises(AuthExpired) as raised:
        await make_call(shop, call)

    assert raised.value.code == "missing_token" and not raised.value.retryable
    # what the operator reads: which shop, and what to set (or which variable is unset)
    expected = UNSET_VAR if unset.get("access_token", "").startswith("env:") else option
    assert expected in raised.value.message and "acme-" in raised.value.message
    assert api.calls == [] and api.shipments == []  # nothing went to the platform
    assert order.state == "paid"


@pytest.mark.parametrize(("platform", "call", "option"), NEEDS_TOKEN)
async def test_with_the_token_the_call_goes_out_as_before(
    platform: str, call: str, option: str, fake: tuple[FakePlatformApi, str]
) -> None:
    api, url = fake
    paid_order(api, platform)
    shop = fake_shop(platform, url)  # access_token = "tok"

    result = await make_call(shop, call)

    if call == "ship":
        assert result.ok and [s["order_id"] for s in api.shipments] == [ORDER_IDS[platform]]
    else:
        assert {e.order_id for e in result} == {ORDER_IDS[platform]}
    token_param = "session" if platform == "taobao" else "access_token"
    assert api.calls and all(c["params"][token_param] == "tok" for c in api.calls)
    assert all(c["signed"] for c in api.calls)


async def test_taobao_reads_the_token_from_session_too(
    fake: tuple[FakePlatformApi, str],
) -> None:
    api, url = fake
    paid_order(api, "taobao")
    shop = without_token(fake_shop("taobao", url), session="sess-1")

    events = await make_call(shop, "changed_orders")

    assert {e.order_id for e in events} == {ORDER_IDS["taobao"]}
    assert all(c["params"]["session"] == "sess-1" for c in api.calls)


@pytest.mark.parametrize(("platform", "call"), LEFT_ALONE)
async def test_calls_no_source_says_need_it_still_go_out_without_one(
    platform: str, call: str, fake: tuple[FakePlatformApi, str]
) -> None:
    """Left to the platform: the request is sent, with no token parameter, and the
    platform's answer (here the fake's success) decides."""
    api, url = fake
    paid_order(api, platform)
    shop = without_token(fake_shop(platform, url))

    await make_call(shop, call)

    assert api.calls
    assert not any("access_token" in c["params"] or "session" in c["params"] for c in api.calls)


@pytest.mark.parametrize("platform", ["taobao", "pinduoduo"])
async def test_a_reconcile_run_for_a_shop_without_token_ends_blocked(
    platform: str, fake: tuple[FakePlatformApi, str], store: Store
) -> None:
    api, url = fake
    paid_order(api, platform)
    shop = without_token(fake_shop(platform, url))

    first = await reconcile.reconcile_shop(store, shop, *WINDOW)
    again = await reconcile.reconcile_shop(store, shop, *WINDOW)

    assert first.outcome == again.outcome == "failed"
    assert first.blocked and again.blocked and again.blocked_tries == 2
    assert first.error_code == "missing_token" and "options.access_token" in (first.error or "")
    runs = store.run(reconcile_sql.runs, shop.name)
    assert [(r["outcome"], r["error_code"]) for r in runs] == [("failed", "missing_token")] * 2
    blocked = next(s for s in store.run(reconcile_sql.states) if s["shop"] == shop.name)["blocked"]
    assert blocked["code"] == "missing_token" and blocked["tries"] == 2
    assert "options.access_token" in blocked["error"]
    assert api.calls == []

    # the token configured: the next run pulls and clears the block
    fixed = await reconcile.reconcile_shop(store, fake_shop(platform, url), *WINDOW)
    assert fixed.outcome == "ok" and fixed.new == 2 and fixed.unblocked
    assert fixed.unblocked["code"] == "missing_token"


async def test_a_missing_token_is_not_platform_trouble(fake: tuple[FakePlatformApi, str]) -> None:
    """Said before the circuit breaker and the cache: with the platform's circuit open,
    a token-less pull is still `missing_token` (not `circuit_open`, not a stale answer),
    and it neither trips nor resets the breaker."""
    api, url = fake
    shop = without_token(fake_shop("pinduoduo", url, api_breaker_failures=1))
    client = connectors.api_client(shop, transport=httpx.AsyncHTTPTransport())
    try:
        client.runtime.breaker.failure("http_503: earlier")
        assert client.runtime.breaker.state is BreakerState.OPEN
        with pytest.raises(AuthExpired) as raised:
            [event async for event in client.changed_orders(*WINDOW)]
        assert raised.value.code == "missing_token"
        assert client.runtime.breaker.state is BreakerState.OPEN
        assert client.runtime.stats.calls == {}  # no call counted, none sent
    finally:
        await client.aclose()
    assert api.calls == []
