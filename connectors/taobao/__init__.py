"""Taobao / Tmall: order messages over TMC, the message channel the hub opens.

TMC does not POST to anyone: the hub holds a WebSocket to the message service
(`tmc.py`, run by `hub/channels.py`) and every message it receives goes through the same
record -> verify -> parse -> dedupe -> commit pipeline as an HTTP push, with the raw frame
bytes as the body and the Confirm/Failed frame as the reply. `api.py` (another module)
calls the TOP API.

Topics map to canonical kinds below; `taobao_trade_TradeChanged` carries the trade's
`status`, mapped by STATUS_KINDS. Times inside content (`modified`) are Beijing wall time;
the frame's `time` header is an absolute epoch. Sources: docs/connectors/taobao.md.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.base import Inbound, Rejection, Reply
from connectors.channel import ChannelConnector
from connectors.taobao import tmc
from connectors.taobao.frames import FrameError, decode
from hub.model import Kind, OrderEvent, shanghai_to_utc, to_decimal

if TYPE_CHECKING:
    from hub.settings import Shop


TOPIC_KINDS: dict[str, Kind] = {
    "taobao_trade_TradeCreate": Kind.CREATED,
    "taobao_trade_TradeBuyerPay": Kind.PAID,
    "taobao_trade_TradeSellerShip": Kind.SHIPPED,
    "taobao_trade_TradeClose": Kind.CANCELLED,
    "taobao_trade_TradeLogisticsAddressChanged": Kind.ADDRESS_CHANGED,
    "taobao_refund_RefundCreated": Kind.REFUND_REQUESTED,
    "taobao_refund_RefundSuccess": Kind.REFUNDED,
}

# trade `status` values (TOP trade status table) for messages that carry a status
# instead of naming the change (TradeChanged)
STATUS_KINDS: dict[str, Kind] = {
    "WAIT_BUYER_PAY": Kind.CREATED,
    "TRADE_NO_CREATE_PAY": Kind.CREATED,
    "WAIT_SELLER_SEND_GOODS": Kind.PAID,
    "WAIT_BUYER_CONFIRM_GOODS": Kind.SHIPPED,
    "TRADE_CLOSED": Kind.CANCELLED,
    "TRADE_CLOSED_BY_TAOBAO": Kind.CANCELLED,
}
STATUS_TOPICS = {"taobao_trade_TradeChanged"}


class Taobao(ChannelConnector):
    name: ClassVar[str] = "taobao"
    channel_name: ClassVar[str] = "TMC"
    channel = tmc.channel

    def check_shop(self, shop: Shop) -> None:
        if not shop.message_url:
            return
        if not shop.app_key:
            raise ValueError("a Taobao shop with a message_url needs app_key (the TMC app key)")
        if not (shop.options.get("seller_id") or shop.options.get("seller_nick")):
            raise ValueError(
                "set options.seller_id (TMC userid) or options.seller_nick so TMC messages "
                "can be matched to this shop"
            )

    def parse(self, msg: Inbound) -> list[OrderEvent]:
        try:
            message = tmc.data_message(decode(msg.body))
        except FrameError as exc:
            raise Rejection("malformed_body", str(exc)) from exc
        try:
            content = json.loads(message.content, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise Rejection("malformed_body", f"content is not JSON: {exc}") from exc
        if not isinstance(content, dict):
            raise Rejection("malformed_body", "content is not a JSON object")
        payload = {
            "id": message.id,
            "topic": message.topic,
            "userid": message.user_id,
            "nick": message.nick,
            "publisher": message.publisher,
            "dataid": message.data_id,
            "time": message.published_at,
            "content": content,
        }
        if not message.topic.startswith(("taobao_trade_", "taobao_refund_")):
            return []  # recorded and confirmed; not an order change (items, logistics, ...)
        tid = content.get("tid")
        if isinstance(tid, bool) or not isinstance(tid, int | str) or tid == "":
            raise Rejection("malformed_body", f"{message.topic} content has no tid")
        kind = TOPIC_KINDS.get(message.topic, Kind.OTHER)
        if message.topic in STATUS_TOPICS:
            kind = STATUS_KINDS.get(str(content.get("status")), Kind.OTHER)
        try:
            occurred = _occurred(content, message, msg)
            amount = _amount(message.topic, content)
        except ValueError as exc:
            raise Rejection("malformed_body", str(exc)) from exc
        return [
            OrderEvent(
                platform=self.name,
                shop=msg.shop.name,
                kind=kind,
                order_id=str(tid),
                occurred_at=occurred,
                platform_type=message.topic,
                message_id=str(message.id),
                amount=amount,
                currency="CNY" if amount is not None else None,
                payload=payload,
            )
        ]

    def answer(self, msg: Inbound, rejection: Rejection | None) -> Reply:
        return tmc.answer(msg.body, msg.header("token") or None, rejection)


def _occurred(content: dict[str, Any], message: tmc.DataMessage, msg: Inbound):  # type: ignore[no-untyped-def]
    modified = content.get("modified")
    if isinstance(modified, str) and modified:
        return shanghai_to_utc(modified)  # content times are Beijing wall time
    return message.published_at or msg.received_at


def _amount(topic: str, content: dict[str, Any]) -> Decimal | None:
    key = "refund_fee" if topic.startswith("taobao_refund_") else "payment"
    return to_decimal(content.get(key))


connector = Taobao()
