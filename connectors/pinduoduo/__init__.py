"""Pinduoduo: order messages over the message service (a WebSocket the hub opens).

Like Taobao's TMC, nothing is POSTed to us: `channel.py` holds the connection (run by
`hub/channels.py`) and each message goes through the same record -> verify -> parse ->
dedupe -> commit pipeline as an HTTP push, with the raw JSON frame as the body and the
Ack/Fail frame as the reply. `api.py` (another module) calls the PDD API.

`message.content` is a JSON document inside a string; its `tid` is the order_sn and
refund amounts (`refund_fee`) are in fen. Sources: docs/connectors/pinduoduo.md.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.base import Inbound, Rejection, Reply
from connectors.channel import ChannelConnector
from connectors.pinduoduo import channel as pmc
from hub.model import Kind, OrderEvent, fen_to_yuan, from_unix

if TYPE_CHECKING:
    from hub.settings import Shop


TYPE_KINDS: dict[str, Kind] = {
    # the first order message: the order is paid and (for group buys) grouped
    "pdd_trade_TradeConfirmed": Kind.PAID,
    "pdd_trade_TradeSellerShip": Kind.SHIPPED,
    "pdd_trade_TradeLogisticsAddressChanged": Kind.ADDRESS_CHANGED,
    "pdd_refund_RefundCreated": Kind.REFUND_REQUESTED,
}


class Pinduoduo(ChannelConnector):
    name: ClassVar[str] = "pinduoduo"
    channel_name: ClassVar[str] = "its message service"
    channel = pmc.channel

    def check_shop(self, shop: Shop) -> None:
        if not shop.message_url:
            return
        if not shop.app_key:
            raise ValueError("a Pinduoduo shop with a message_url needs app_key (the client_id)")
        if not shop.options.get("mall_id"):
            raise ValueError(
                "set options.mall_id so message-service messages can be matched to this shop"
            )

    def parse(self, msg: Inbound) -> list[OrderEvent]:
        try:
            frame = pmc.load(msg.body)
        except pmc.FrameError as exc:
            raise Rejection("malformed_body", str(exc)) from exc
        message = frame.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise Rejection("malformed_body", "frame has no message.type")
        text = message.get("content")
        try:
            content = json.loads(text, parse_float=Decimal) if isinstance(text, str) else None
        except json.JSONDecodeError as exc:
            raise Rejection("malformed_body", f"message.content is not JSON: {exc}") from exc
        if not isinstance(content, dict):
            raise Rejection("malformed_body", "message.content is not a JSON object")
        kind_text = message["type"]
        payload = {
            "id": frame.get("id"),
            "type": kind_text,
            "mallID": message.get("mallID"),
            "time": frame.get("time"),
            "content": content,
        }
        if not kind_text.startswith(("pdd_trade_", "pdd_refund_")):
            return []  # recorded and acked; not an order change
        tid = content.get("tid")
        if not isinstance(tid, str | int) or isinstance(tid, bool) or tid == "":
            raise Rejection("malformed_body", f"{kind_text} content has no tid")
        try:
            occurred = _occurred(content, frame, msg)
            amount = fen_to_yuan(content.get("refund_fee"))
        except (ValueError, OverflowError) as exc:
            raise Rejection("malformed_body", str(exc)) from exc
        return [
            OrderEvent(
                platform=self.name,
                shop=msg.shop.name,
                kind=TYPE_KINDS.get(kind_text, Kind.OTHER),
                order_id=str(tid),
                occurred_at=occurred,
                platform_type=kind_text,
                message_id=str(frame.get("id")),
                amount=amount,
                currency="CNY" if amount is not None else None,
                payload=payload,
            )
        ]

    def answer(self, msg: Inbound, rejection: Rejection | None) -> Reply:
        return pmc.answer(msg.body, rejection)


def _occurred(content: dict[str, Any], frame: dict[str, Any], msg: Inbound):  # type: ignore[no-untyped-def]
    # refund messages carry `modified` (epoch ms); trade messages only the frame's time
    for value in (content.get("modified"), frame.get("time")):
        if isinstance(value, int) and not isinstance(value, bool):
            return from_unix(value, millis=True)
    return msg.received_at


connector = Pinduoduo()
