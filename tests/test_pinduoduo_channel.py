"""Pinduoduo message service: the connect sign against the published check value, the
frames the SDK sends, 64-bit ids, and the connector's parse/answer behaviour."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from connectors.base import Inbound, Rejection
from connectors.pinduoduo import channel as pmc
from connectors.pinduoduo import connector as pdd
from hub.model import Kind
from hub.settings import Shop

BIG_ID = 9_007_199_254_740_993  # 2**53 + 1: a double would make it ...992
SHOP = Shop("acme-pdd", "pinduoduo", "s", app_key="app", options={"mall_id": 171504183})


def test_sign_reproduces_the_published_check_value():
    # published with the whalesky-labs/pdd-sdk-php MessageClient unit test
    assert pmc.sign("app", "1700000000000", "secret") == (
        "OTgxODMwNDI2NWZiN2NiNzA2NzIxOTI0ZjJlMDMxMjE="
    )
    # the rule, by hand: base64 of the 32-char lower-case hex text, not of the raw digest
    hex_text = hashlib.md5(b"app1700000000000secret").hexdigest()
    assert (
        pmc.sign("app", "1700000000000", "secret") == base64.b64encode(hex_text.encode()).decode()
    )


def test_connect_url_keeps_the_raw_padding():
    url = pmc.connect_url(
        "wss://message-api.pinduoduo.com/", "app", "secret", timestamp_ms=1700000000000
    )
    assert url == (
        "wss://message-api.pinduoduo.com/message/app/1700000000000/"
        "OTgxODMwNDI2NWZiN2NiNzA2NzIxOTI0ZjJlMDMxMjE="
    )


def server_frame(message_type: str, content: dict | str, *, mall_id: int = 171504183) -> bytes:
    text = content if isinstance(content, str) else json.dumps(content)
    # the raw text as the service sends it: ids are JSON integers beyond 2**53
    return (
        f'{{"id":{BIG_ID},"commandType":"Common","time":1625637425016,"sendTime":1625637425100,'
        f'"message":{{"type":"{message_type}","mallID":{mall_id},"content":{json.dumps(text)}}}}}'
    ).encode()


def test_ack_and_fail_frames_have_the_sdk_fields_and_exact_ids():
    raw = server_frame("pdd_trade_TradeConfirmed", {"tid": "1"})
    ack = json.loads(pmc.ack_frame(pmc.load(raw), now_ms=1))
    assert ack == {
        "id": BIG_ID,
        "commandType": "Ack",
        "time": 1,
        "sendTime": 1625637425100,
        "type": "pdd_trade_TradeConfirmed",
        "mallID": 171504183,
    }
    assert f'"id":{BIG_ID}'.encode() in pmc.ack_frame(pmc.load(raw))
    fail = json.loads(pmc.ack_frame(pmc.load(raw), fail_reason="x" * 1200, now_ms=1))
    assert fail["commandType"] == "Fail" and fail["failReason"] == "x" * 1000


def test_heartbeat_frame():
    assert json.loads(pmc.heartbeat(now_ms=5)) == {
        "id": 5,
        "commandType": "HeartBeat",
        "time": 5,
        "version": "1.1.6",
    }


def inbound(raw: bytes) -> Inbound:
    return Inbound(
        "pinduoduo", SHOP, "WS", "/channels/pinduoduo/acme-pdd", "", "", {}, raw, datetime.now(UTC)
    )


@pytest.mark.parametrize(
    ("message_type", "kind"),
    [
        ("pdd_trade_TradeConfirmed", Kind.PAID),
        ("pdd_trade_TradeSellerShip", Kind.SHIPPED),
        ("pdd_trade_TradeLogisticsAddressChanged", Kind.ADDRESS_CHANGED),
        ("pdd_trade_TradeSuccess", Kind.OTHER),
        ("pdd_refund_RefundCreated", Kind.REFUND_REQUESTED),
        ("pdd_refund_RefundClosed", Kind.OTHER),
    ],
)
def test_types_map_to_kinds(message_type, kind):
    (event,) = pdd.parse(inbound(server_frame(message_type, {"tid": "210822-038440825871540"})))
    assert event.kind is kind and event.order_id == "210822-038440825871540"
    assert event.message_id == str(BIG_ID)
    assert event.occurred_at == datetime(2021, 7, 7, 5, 57, 5, 16000, tzinfo=UTC)


def test_refund_fee_is_fen_and_modified_is_epoch_ms():
    content = {
        "mall_id": 171504183,
        "refund_fee": 1990,
        "modified": 1625637425016,
        "refund_id": 7381745730,
        "tid": "210707-339507978993455",
    }
    (event,) = pdd.parse(inbound(server_frame("pdd_refund_RefundCreated", content)))
    assert event.amount == Decimal("19.90") and event.currency == "CNY"
    assert event.payload["content"]["refund_id"] == 7381745730


def test_bad_content_is_malformed_and_answered_with_fail():
    msg = inbound(server_frame("pdd_trade_TradeConfirmed", "{not json"))
    with pytest.raises(Rejection) as info:
        pdd.parse(msg)
    reply = pdd.reject(msg, info.value)
    assert json.loads(reply.body)["commandType"] == "Fail"
    assert json.loads(reply.body)["failReason"].startswith("malformed_body")


def test_ack_of_a_message_is_ack():
    assert (
        json.loads(pdd.ack(inbound(server_frame("pdd_trade_TradeConfirmed", {"tid": "1"}))).body)[
            "commandType"
        ]
        == "Ack"
    )
