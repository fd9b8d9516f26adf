"""The channel recordings shipped in recordings/taobao and recordings/pinduoduo (captured
from the hub against the local fakes) still mean what they meant: each parses to the
recorded outcome, and the answer the connector builds is the one that was sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import connectors
from connectors.base import Inbound, Rejection
from connectors.taobao import tmc
from connectors.taobao.frames import decode
from hub.model import parse_iso
from hub.settings import Shop
from sandbox import recordings

ROOT = Path(__file__).resolve().parent.parent / "recordings"
FILES = sorted([*ROOT.glob("taobao/*.json"), *ROOT.glob("pinduoduo/*.json")])
SHOPS = {
    "acme-tmall": Shop(
        "acme-tmall", "taobao", "s", app_key="12345678", options={"seller_id": 2200123456}
    ),
    "acme-pdd": Shop(
        "acme-pdd", "pinduoduo", "s", app_key="pdd-client", options={"mall_id": 171504183}
    ),
}


def test_both_platforms_have_recordings():
    assert {p.parent.name for p in FILES} == {"taobao", "pinduoduo"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recording_parses_to_its_recorded_outcome(path: Path):
    rec = recordings.load(path)
    connector = connectors.get(rec["platform"])
    assert connector is not None and rec["method"] == "WS"
    body = recordings.body_bytes(rec)
    sent = recordings.decode_body(rec["response"]["body"], rec["response"]["body_encoding"])
    if rec["shop"] is None:  # the seller matched no shop: nothing to parse it for
        frame = tmc.data_message(decode(body))
        assert tmc.route(tuple(SHOPS.values()), frame.user_id, frame.nick) is None
        assert rec["reason"] == "unknown_seller" and decode(sent).headers["__kind"] == tmc.FAILED
        return
    msg = Inbound(
        rec["platform"],
        SHOPS[rec["shop"]],
        "WS",
        rec["path"],
        "",
        "",
        dict(recordings.headers(rec)),
        body,
        parse_iso(rec["received_at"]),
    )
    if rec["outcome"] == "rejected":
        with pytest.raises(Rejection) as info:
            connector.verify(msg)
            connector.parse(msg)
        assert info.value.reason == rec["reason"]
        reply = connector.reject(msg, info.value)
    else:
        events = connector.parse(msg)
        assert events and all(e.shop == rec["shop"] for e in events)
        reply = connector.ack(msg)
    if rec["platform"] == "taobao":
        assert reply.body == sent  # Confirm/Failed frames are byte-identical
    else:  # Ack/Fail carry the time they were sent
        assert {**json.loads(reply.body), "time": 0} == {**json.loads(sent), "time": 0}
