"""Douyin Shop pushes through the real ASGI app: the published sign rule computed by hand,
the official SDK's record shape and SKIT's variant, the tag-0 verification message,
multi-record pushes, 19-digit ids, redelivery, every bad input, and forensics."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import Inbound
from connectors.douyin import connector
from hub import settings as settings_mod
from hub.model import Kind, OrderEvent, content_key
from hub.runtime import Hub
from hub.settings import Settings
from hub.store import queries

pytestmark = pytest.mark.anyio

# credentials in the shape the platform issues (19-digit app key, UUID secret), as in
# the minibear2021/doudian README example
APP_KEY = "3409409348479354011"
SECRET = "2ad2355c-01d0-11f8-91dc-05a8cd1054b1"
TEST_APP_KEY = "7000000000000000001"
TEST_SECRET = "11111111-2222-3333-4444-555555555555"
URL = "/webhooks/douyin/dy"
BIG = 4881995531871913482  # a p_id from the official SDK's examples, > 2^53

# pushes only: no reconciliation against the real Douyin API gateway
SHOPS = f"""
[shops.dy]
platform = "douyin"
app_key = "{APP_KEY}"
secret = "{SECRET}"
old_secrets = ["retired-secret"]
options = {{ reconcile = false }}

[shops.dy-test]
platform = "douyin"
app_key = "{TEST_APP_KEY}"
secret = "{TEST_SECRET}"
options = {{ reconcile = false }}
"""


@pytest.fixture
def settings(write_config: Callable[[str], Path]) -> Settings:
    return settings_mod.load(write_config(SHOPS), env={})


def by_hand(body: bytes, app_key: str = APP_KEY, secret: str = SECRET) -> str:
    """The published rule, computed independently: md5(app_key + body + secret), hex."""
    return hashlib.md5(app_key.encode() + body + secret.encode()).hexdigest()


def record(tag: Any, data: dict[str, Any], msg_id: str = "m1", *, as_text: bool = True) -> dict:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return {"tag": tag, "msg_id": msg_id, "data": text if as_text else data}


def push_body(*records: dict) -> bytes:
    return json.dumps(list(records), separators=(",", ":"), ensure_ascii=False).encode()


def headers(body: bytes, sign: str | None = None, app_id: str = APP_KEY) -> dict[str, str]:
    return {
        "app-id": app_id,
        "event-sign": sign if sign is not None else by_hand(body),
        "content-type": "application/json",
    }


async def last_request(hub: Hub) -> dict:
    return (await hub.store.read(lambda c: queries.list_requests(c, limit=1)))[0]


async def events(hub: Hub, order_id: str) -> list[dict]:
    return await hub.store.read(queries.events_for_order, "douyin", "dy", order_id)


PAID = {
    "p_id": BIG,
    "s_ids": [BIG + 1],
    "shop_id": 95250,
    "order_status": 2,
    "order_type": 0,
    "pay_type": 1,
    "biz": 2,
    "pay_time": 1762790405,  # 2025-11-10 16:00:05 UTC
    "pay_amount": 2990,
}


def test_event_sign_is_md5_of_app_key_body_secret() -> None:
    from connectors.douyin.signing import event_sign

    body = push_body(record("101", PAID))
    assert event_sign(APP_KEY, SECRET, body) == by_hand(body)
    assert len(by_hand(body)) == 32 and by_hand(body) == by_hand(body).lower()


async def test_official_sdk_shaped_push_becomes_a_paid_event(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    body = push_body(record("101", PAID, "7012345678901234567"))
    r = await client.post(URL, content=body, headers=headers(body))
    assert r.status_code == 200, r.text
    assert r.content == b'{"code":0,"msg":"success"}'
    [event] = await events(hub, str(BIG))
    assert event["kind"] == "paid" and event["platform_type"] == "101"
    assert event["amount"] == "29.90" and event["currency"] == "CNY"
    assert event["occurred_at"] == "2025-11-10T16:00:05.000000Z"
    assert event["message_id"] == "7012345678901234567"
    # the 19-digit ids stay exact inside the stored payload too
    assert str(BIG + 1) in event["payload"] and str(BIG) in event["payload"]


async def test_skit_variant_msgId_numeric_tag_object_data(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    data = {"p_id": str(BIG), "s_id": BIG, "aftersale_id": "x1", "apply_time": 1618990587}
    rec = {"tag": 200, "msgId": "04288::200:1618990587:683", "data": data}
    body = push_body(rec)
    r = await client.post(URL, content=body, headers=headers(body))
    assert r.status_code == 200, r.text
    [event] = await events(hub, str(BIG))
    assert event["kind"] == "refund_requested" and event["platform_type"] == "200"
    assert event["message_id"] == "04288::200:1618990587:683"
    assert event["occurred_at"] == "2021-04-21T07:36:27.000000Z"


async def test_verification_message_is_acked_and_recorded_without_an_event(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    body = push_body({"tag": "0", "msg_id": "verify", "data": "{}"})
    r = await client.post(URL, content=body, headers=headers(body))
    assert r.json() == {"code": 0, "msg": "success"}
    req = await last_request(hub)
    assert req["outcome"] == "accepted" and req["events_total"] == 0
    assert (await hub.store.read(queries.counts))["events"] == 0


async def test_one_push_many_records_and_redelivery_is_a_duplicate(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    body = push_body(
        record("100", {"p_id": BIG, "create_time": 1762790000}, "a"),
        record("101", PAID, "b"),
        record("106", {"p_id": 42, "cancel_time": 1762790500, "cancel_reason": "买错了"}, "c"),
    )
    first = await client.post(URL, content=body, headers=headers(body))
    again = await client.post(URL, content=body, headers=headers(body))
    assert first.status_code == again.status_code == 200
    assert again.json() == {"code": 0, "msg": "success"}
    assert [e["kind"] for e in await events(hub, str(BIG))] == ["created", "paid"]
    assert [e["kind"] for e in await events(hub, "42")] == ["cancelled"]
    outcomes = await hub.store.read(queries.outcome_counts)
    assert outcomes == {"accepted": 1, "duplicate:duplicate": 1}


async def test_same_change_under_another_message_id_is_deduped_not_refused(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    one = push_body(record("101", PAID, "first"))
    two = push_body(record("101", PAID | {"biz": 3}, "second"))
    assert (await client.post(URL, content=one, headers=headers(one))).status_code == 200
    r = await client.post(URL, content=two, headers=headers(two))
    assert r.status_code == 200 and r.json()["code"] == 0
    assert len(await events(hub, str(BIG))) == 1


def test_push_and_reconciliation_of_the_same_change_share_the_dedupe_key() -> None:
    body = push_body(record("101", PAID))
    shop = settings_mod.Shop(name="dy", platform="douyin", secret=SECRET, app_key=APP_KEY)
    msg = Inbound("douyin", shop, "POST", URL, "", "", headers(body), body, datetime.now(UTC))
    connector.verify(msg)
    [pushed] = connector.parse(msg)
    reconciled = OrderEvent(
        platform="douyin",
        shop="dy",
        kind=Kind.PAID,
        order_id=str(BIG),
        occurred_at=datetime(2025, 11, 10, 16, 0, 5, tzinfo=UTC),
        platform_type="order_status:2",
        source="reconcile",
    )
    assert pushed.dedupe_key == content_key(reconciled) == reconciled.dedupe_key


async def test_unmapped_tag_is_kept_as_other_and_counted(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    body = push_body(record("999", {"p_id": 7, "update_time": 1762790405}))
    assert (await client.post(URL, content=body, headers=headers(body))).status_code == 200
    [event] = await events(hub, "7")
    assert event["kind"] == "other" and event["platform_type"] == "999"
    assert b'orderhook_events_unmapped_total{platform="douyin",platform_type="999"} 1.0' in (
        hub.metrics.render()
    )


async def test_raw_bytes_are_signed_not_a_reserialisation(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    body = (
        '[ {"tag": "106", "msg_id": "sp", "data": "{\\"p_id\\": 9, \\"cancel_time\\": '
        '1762790405, \\"cancel_reason\\": \\"不想要了\\"}"} ]'
    ).encode()
    assert (await client.post(URL, content=body, headers=headers(body))).status_code == 200
    compact = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()
    r = await client.post(URL, content=body, headers=headers(body, by_hand(compact)))
    assert r.status_code == 401
    assert (await last_request(hub))["forensics"].startswith("reserialised-body:")


async def test_a_retired_secret_still_verifies(client: httpx.AsyncClient) -> None:
    body = push_body(record("100", {"p_id": 5, "create_time": 1762790000}))
    r = await client.post(
        URL, content=body, headers=headers(body, by_hand(body, secret="retired-secret"))
    )
    assert r.status_code == 200


BAD = [
    ("no headers", b"[]", {"content-type": "application/json"}, 401, "missing_signature"),
    ("wrong sign", b"[]", headers(b"[]", "0" * 32), 401, "bad_signature"),
    ("unknown app", b"[]", headers(b"[]", app_id="123"), 401, "app_key_mismatch"),
    ("not json", b"[{", headers(b"[{"), 400, "malformed_body"),
    ("data not json", b'[{"tag":"101","data":"{"}]', None, 400, "malformed_body"),
    ("record not object", b"[1]", None, 400, "malformed_body"),
    ("no tag", b'[{"msg_id":"x","data":"{}"}]', None, 400, "malformed_body"),
    ("tag is bool", b'[{"tag":true,"data":"{}"}]', None, 400, "malformed_body"),
    ("p_id float", b'[{"tag":"101","data":{"p_id":1.5}}]', None, 400, "malformed_body"),
    ("order tag without p_id", b'[{"tag":"101","data":{}}]', None, 400, "malformed_body"),
    (
        "time out of range",
        b'[{"tag":"100","data":{"p_id":1,"create_time":99999999999999999}}]',
        None,
        400,
        "malformed_body",
    ),
    (
        "bad time",
        b'[{"tag":"100","data":{"p_id":1,"create_time":"soon"}}]',
        None,
        400,
        "malformed_body",
    ),
]


@pytest.mark.parametrize(("case", "body", "hdrs", "status", "reason"), BAD, ids=[b[0] for b in BAD])
async def test_bad_input_is_a_4xx_in_douyins_shape_and_recorded(
    client: httpx.AsyncClient,
    hub: Hub,
    case: str,
    body: bytes,
    hdrs: dict[str, str] | None,
    status: int,
    reason: str,
) -> None:
    r = await client.post(URL, content=body, headers=hdrs or headers(body))
    assert r.status_code == status, r.text
    answer = r.json()
    assert answer["code"] != 0 and answer["msg"].startswith(reason)
    req = await last_request(hub)
    assert (req["outcome"], req["reason"], req["body"]) == ("rejected", reason, body)


async def test_form_content_type_is_refused(client: httpx.AsyncClient) -> None:
    body = b"[]"
    r = await client.post(URL, content=body, headers=headers(body) | {"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["code"] == 1


def hmac_sha256(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


FORENSICS = [
    ("hmac-sha256", lambda b: hmac_sha256(b), "hmac-sha256:"),
    ("upper hex", lambda b: by_hand(b).upper(), "upper-hex:"),
    (
        "secret first",
        lambda b: hashlib.md5(SECRET.encode() + b + APP_KEY.encode()).hexdigest(),
        "swapped-key-secret:",
    ),
    ("test shop's secret", lambda b: by_hand(b, APP_KEY, TEST_SECRET), "peer_secret:dy-test:"),
]


@pytest.mark.parametrize(("case", "make", "expect"), FORENSICS, ids=[f[0] for f in FORENSICS])
async def test_forensics_names_the_near_miss(
    client: httpx.AsyncClient, hub: Hub, case: str, make: Callable[[bytes], str], expect: str
) -> None:
    body = push_body(record("101", PAID))
    r = await client.post(URL, content=body, headers=headers(body, make(body)))
    assert r.status_code == 401
    req = await last_request(hub)
    assert req["reason"] == "bad_signature"
    assert (req["forensics"] or "").startswith(expect), req["forensics"]
    label = expect.split(":", 1)[0]
    metric = f'orderhook_signature_forensics_total{{match="{label}",platform="douyin"}} 1.0'
    assert metric.encode() in hub.metrics.render()


async def test_push_for_the_test_app_sent_to_the_production_url_is_named(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    body = push_body(record("101", PAID))
    sign = by_hand(body, TEST_APP_KEY, TEST_SECRET)
    r = await client.post(URL, content=body, headers=headers(body, sign, app_id=TEST_APP_KEY))
    assert r.status_code == 401
    req = await last_request(hub)
    assert req["reason"] == "app_key_mismatch"
    assert req["forensics"].startswith("peer_app_key:dy-test: ")
    assert "verifies with its secret" in req["forensics"]


async def test_simulated_pushes_are_accepted_and_each_variant_is_identified(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    shop = hub.settings.shops["dy"]
    for n, kind in enumerate(
        [Kind.CREATED, Kind.PAID, Kind.SHIPPED, Kind.CANCELLED, Kind.REFUNDED]
    ):
        out = connector.simulate(shop, kind, str(BIG + n), amount=Decimal("12.30"))
        r = await client.post(URL + out.tail, content=out.body, headers=out.headers)
        assert r.status_code == 200, r.text
        [event] = await events(hub, str(BIG + n))
        assert event["kind"] == kind.value
    variants = connector.variants(shop, out)
    assert {"hmac-sha256", "upper-hex", "hmac-md5"} <= set(variants)
    for label, variant in variants.items():
        r = await client.post(URL, content=variant.body, headers=variant.headers)
        assert r.status_code == 401
        assert (await last_request(hub))["forensics"].startswith(label + ":"), label


def shop_toml(name: str, options: str) -> str:
    return (
        f'[shops.{name}]\nplatform = "douyin"\napp_key = "{APP_KEY}"\nsecret = "{SECRET}"\n'
        f"options = {{ reconcile = false, {options} }}\n"
    )


async def test_tool_app_records_reach_the_shop_that_claims_their_shop_id(
    write_config: Callable[[str], Path],
) -> None:
    from hub.app import create_app

    extra = shop_toml("dy-a", 'shop_id = "111"') + shop_toml("dy-b", 'shop_id = "222"')
    hub = Hub(settings_mod.load(write_config(extra), env={}))
    async with hub.running():
        transport = httpx.ASGITransport(app=create_app(hub, lifespan=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            body = push_body(
                record("100", {"p_id": 1, "shop_id": 111, "create_time": 1762790000}, "x"),
                record("100", {"p_id": 2, "shop_id": 222, "create_time": 1762790000}, "y"),
                record("100", {"p_id": 3, "shop_id": 333, "create_time": 1762790000}, "z"),
            )
            r = await client.post("/webhooks/douyin/dy-a", content=body, headers=headers(body))
            assert r.status_code == 200, r.text
        found = {
            (shop, order)
            for shop in ("dy-a", "dy-b")
            for order in ("1", "2", "3")
            if await hub.store.read(queries.events_for_order, "douyin", shop, order)
        }
    assert found == {("dy-a", "1"), ("dy-b", "2"), ("dy-a", "3")}


def test_a_non_numeric_shop_id_option_is_a_config_error(
    write_config: Callable[[str], Path],
) -> None:
    extra = shop_toml("dy-x", 'shop_id = "abc"')
    with pytest.raises(settings_mod.ConfigError, match="shop_id must be the Douyin shop id"):
        settings_mod.load(write_config(extra), env={})
