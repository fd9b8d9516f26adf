"""Taobao TMC: top-link v2 frames against byte-exact examples built from the SDK
encoders' rules (docs/connectors/taobao.md shows how), the connect signature, and the
connector's parse/answer behaviour."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from connectors.base import Inbound, Rejection
from connectors.taobao import connector as taobao
from connectors.taobao import tmc
from connectors.taobao.frames import (
    Frame,
    FrameError,
    MessageType,
    byte,
    decode,
    encode,
    int64,
)
from hub.app import create_app
from hub.model import Kind
from hub.runtime import Hub
from hub.settings import ConfigError, Shop, load

TOKEN = "tok"
BIG_ID = 9_007_199_254_740_993  # 2**53 + 1

# PullRequest, identical from the Java SDK and tmc.js:
#   02 02 | 0500 token: 03000000 "tok" | 0100 custom: 06000000 "__kind" 02(i8) 01 | 0000
PULL = "0202050003000000746f6b0100060000005f5f6b696e6402010000"
# Confirm as the Java SDK sends it (HashMap order: "id" hashes to bucket 11, "__kind" 13):
#   02 02 | 0500 "tok" | 0100 "id" 05(i64) 0100000000002000 | 0100 "__kind" 02(i8) 02 | 0000
CONFIRM_JAVA = (
    "0202050003000000746f6b01000200000069640501000000000020000100060000005f5f6b696e6402020000"
)
# Confirm as tmc.js sends it (insertion order: __kind, then id as a BigInt -> i64)
CONFIRM_TMCJS = (
    "0202050003000000746f6b0100060000005f5f6b696e64020201000200000069640501000000000020000000"
)
# Failed as the Java SDK sends it (HashMap order msg(0), id(11), __kind(13); kind 20 = 0x14)
FAILED_JAVA = (
    "0202050003000000746f6b0100030000006d7367010e000000756e6b6e6f776e5f73656c6c6572"
    "01000200000069640501000000000020000100060000005f5f6b696e6402140000"
)
# CONNECT as tmc.js sends it: app_key 12345678, group default, timestamp 1700000000000,
# sign over secret "tmc-secret", sdk TaoMessageConsumer, intranet_ip 10.0.0.8; each
# custom header is 0100 + counted name + 01(string) + counted value
CONNECT_SIGN = "CDBB56350586D4D5445EA92E17841A92"
CONNECT_TMCJS = (
    "02000100070000006170705f6b65790108000000313233343536373801000a00000067726f75705f6e616d65"
    "010700000064656661756c7401000900000074696d657374616d70010d000000313730303030303030303030"
    "300100040000007369676e012000000043444242353633353035383644344435343435454139324531373834"
    "3141393201000300000073646b011200000054616f4d657373616765436f6e73756d657201000b000000696e"
    "7472616e65745f6970010800000031302e302e302e380000"
)


def test_pull_confirm_failed_frames_match_the_java_sdk_bytes():
    assert encode(tmc.pull_frame(TOKEN)).hex() == PULL
    assert encode(tmc.confirm_frame(TOKEN, BIG_ID)).hex() == CONFIRM_JAVA
    assert encode(tmc.failed_frame(TOKEN, BIG_ID, "unknown_seller")).hex() == FAILED_JAVA


def test_tmcjs_header_order_encodes_and_decodes_the_same_message():
    frame = Frame(MessageType.SEND, {"__kind": 2, "id": int64(BIG_ID)}, token=TOKEN)
    assert encode(frame).hex() == CONFIRM_TMCJS
    for example in (CONFIRM_JAVA, CONFIRM_TMCJS):
        decoded = decode(bytes.fromhex(example))
        assert decoded.token == TOKEN
        assert decoded.headers == {"id": BIG_ID, "__kind": 2} or decoded.headers == {
            "__kind": 2,
            "id": BIG_ID,
        }


def test_connect_frame_matches_tmcjs_bytes_and_the_signature_rule():
    by_hand = hashlib.md5(
        b"tmc-secretapp_key12345678group_namedefaulttimestamp1700000000000tmc-secret"
    ).hexdigest()
    assert by_hand.upper() == CONNECT_SIGN
    assert tmc.sign("tmc-secret", "12345678", "default", "1700000000000") == CONNECT_SIGN
    frame = tmc.connect_frame("12345678", "tmc-secret", timestamp_ms=1_700_000_000_000)
    frame.headers["sdk"] = "TaoMessageConsumer"  # tmc.js names itself; we say "orderhook"
    frame.headers["intranet_ip"] = "10.0.0.8"
    assert encode(frame).hex() == CONNECT_TMCJS


def test_connectack_token_and_refusal_are_read():
    ok = decode(bytes.fromhex("0201" + "0500" + "05000000" + b"abcde".hex() + "0000"))
    assert ok.type is MessageType.CONNECTACK and ok.token == "abcde" and not ok.refused
    phrase = b"invalid sign"
    refused = decode(
        bytes.fromhex("0201" + "0200" + "91010000" + "0300" + f"{len(phrase):02x}000000")
        + phrase
        + b"\x00\x00"
    )
    assert (
        refused.refused and refused.status_code == 401 and refused.status_phrase == "invalid sign"
    )


def test_every_value_format_round_trips():
    moment = datetime(2026, 11, 11, 0, 0, 5, 123000, tzinfo=UTC)
    headers = {
        "void": None,
        "text": "淘宝",
        "i8": byte(-5),
        "i16": 300,
        "i32": 70000,
        "i64": int64(BIG_ID),
        "date": moment,
        "bytes": b"\x00\x01",
    }
    frame = decode(encode(Frame(MessageType.SEND, headers, status_code=7, flag=3, token="t")))
    assert frame.headers == {**headers, "i8": -5, "i64": BIG_ID}
    assert (frame.status_code, frame.flag, frame.token) == (7, 3, "t")


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x02", b"\x01\x02\x00\x00", b"\x02\x09\x00\x00", b"\x02\x02\x01\x00\xff\xff\xff\x7f"],
)
def test_garbage_is_a_frame_error(raw):
    with pytest.raises(FrameError):
        decode(raw)


# --- the connector ----------------------------------------------------------------------

SHOP = Shop("acme", "taobao", "s", app_key="12345678", options={"seller_id": 2200123456})


def data_frame(topic: str, content: dict | str, *, gzipped: bool = False) -> bytes:
    text = content if isinstance(content, str) else json.dumps(content)
    return encode(
        Frame(
            MessageType.SEND,
            {
                "id": int64(BIG_ID),
                "topic": topic,
                "content": gzip.compress(text.encode()) if gzipped else text,
                "time": datetime(2026, 11, 10, 16, 0, 5, tzinfo=UTC),
                "userid": int64(2200123456),
                "nick": "acme",
            },
            token=TOKEN,
        )
    )


def inbound(raw: bytes) -> Inbound:
    return Inbound(
        "taobao",
        SHOP,
        "WS",
        "/channels/taobao/acme",
        "",
        "",
        {"token": TOKEN},
        raw,
        datetime.now(UTC),
    )


@pytest.mark.parametrize(
    ("topic", "content", "kind", "amount"),
    [
        (
            "taobao_trade_TradeCreate",
            {"tid": 4109876543210987654, "payment": "99.90"},
            Kind.CREATED,
            "99.90",
        ),
        ("taobao_trade_TradeBuyerPay", {"tid": 1, "payment": "10.00"}, Kind.PAID, "10.00"),
        (
            "taobao_trade_TradeSellerShip",
            {"tid": 1, "status": "WAIT_BUYER_CONFIRM_GOODS"},
            Kind.SHIPPED,
            None,
        ),
        (
            "taobao_trade_TradeClose",
            {"tid": 1, "status": "TRADE_CLOSED_BY_TAOBAO"},
            Kind.CANCELLED,
            None,
        ),
        (
            "taobao_trade_TradeChanged",
            {"tid": 1, "status": "WAIT_SELLER_SEND_GOODS"},
            Kind.PAID,
            None,
        ),
        ("taobao_trade_TradeMemoModified", {"tid": 1, "seller_memo": "x"}, Kind.OTHER, None),
        (
            "taobao_refund_RefundSuccess",
            {"tid": 1, "refund_id": 2, "refund_fee": "5.50"},
            Kind.REFUNDED,
            "5.50",
        ),
    ],
)
def test_topics_map_to_kinds(topic, content, kind, amount):
    (event,) = taobao.parse(inbound(data_frame(topic, content, gzipped=True)))
    assert event.kind is kind and event.platform_type == topic
    assert event.order_id == str(content["tid"])  # 64-bit tids exact
    assert event.amount == (Decimal(amount) if amount else None)
    assert event.message_id == str(BIG_ID)
    assert event.occurred_at == datetime(2026, 11, 10, 16, 0, 5, tzinfo=UTC)


def test_non_order_topics_are_taken_without_events():
    assert taobao.parse(inbound(data_frame("taobao_item_ItemAdd", {"num_iid": 1}))) == []


def test_ack_is_confirm_and_reject_is_failed_with_the_reason():
    msg = inbound(data_frame("taobao_trade_TradeCreate", {"tid": 1}))
    assert taobao.ack(msg).body.hex() == CONFIRM_JAVA
    reply = taobao.reject(msg, Rejection("unknown_seller"))
    assert reply.body.hex() == FAILED_JAVA and reply.status == 400


def test_bad_content_is_malformed():
    with pytest.raises(Rejection) as info:
        taobao.parse(inbound(data_frame("taobao_trade_TradeCreate", "{oops")))
    assert info.value.reason == "malformed_body"


def test_shop_needs_a_seller_mapping_when_it_has_a_channel(tmp_path: Path):
    config = tmp_path / "o.toml"
    config.write_text(
        '[shops.t]\nplatform = "taobao"\napp_key = "1"\nsecret = "s"\nmessage_url = "ws://x/"\n'
    )
    with pytest.raises(ConfigError, match="seller_id"):
        load(config, env={})


@pytest.mark.anyio
async def test_an_http_push_is_refused_with_a_reason(tmp_path: Path):
    config = tmp_path / "o.toml"
    config.write_text(
        f'[hub]\ndb = "{tmp_path}/h.db"\n[shops.t]\nplatform = "taobao"\nsecret = "s"\n'
    )
    hub = Hub(load(config, env={}), services=[])
    async with hub.running():
        transport = httpx.ASGITransport(app=create_app(hub, lifespan=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            response = await client.post("/webhooks/taobao/t", json={"tid": 1})
    assert response.status_code == 404
    assert response.json()["error"]["reason"] == "channel_only"
