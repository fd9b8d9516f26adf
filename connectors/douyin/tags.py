"""Douyin Shop message tags -> canonical kinds, with each tag's time and amount fields.

Tag numbers and field names agree in the official Java SDK's message param classes,
zsmhub/doudian-sdk `message/*.go` and the SKIT event classes (docs/connectors/douyin.md
has the table with sources). A tag missing here is kept as kind OTHER, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.model import Kind

VERIFY_TAG = "0"  # sent once when the push URL is configured; acked, recorded, no event


@dataclass(frozen=True, slots=True)
class Tag:
    kind: Kind
    name: str  # the platform's own message name (SKIT's `doudian_*` suffix)
    time_field: str | None  # Unix seconds of the change itself
    amount_field: str | None = None  # fen


TAGS: dict[str, Tag] = {
    "100": Tag(Kind.CREATED, "trade_TradeCreate", "create_time"),
    "101": Tag(Kind.PAID, "trade_TradePaid", "pay_time", "pay_amount"),
    "102": Tag(Kind.SHIPPED, "trade_TradeSellerShip", "update_time"),
    # completion has no canonical kind: kept as OTHER (the order is already shipped)
    "103": Tag(Kind.OTHER, "trade_TradeSuccess", "complete_time"),
    "104": Tag(Kind.OTHER, "trade_TradeLogisticsChanged", "update_time"),
    "105": Tag(Kind.ADDRESS_CHANGED, "trade_TradeAddressChanged", "update_time"),
    "106": Tag(Kind.CANCELLED, "trade_TradeCanceled", "cancel_time"),
    # a partial shipment does not ship the order; OTHER keeps it visible without
    # moving the order to shipped
    "108": Tag(Kind.OTHER, "trade_TradePartlySellerShip", "update_time"),
    "109": Tag(Kind.OTHER, "trade_TradeAmountChanged", "update_time"),
    # paid but held (risk review, pre-sale): not yet to be fulfilled, 101 follows
    "110": Tag(Kind.OTHER, "trade_TradePending", "pay_time", "pay_amount"),
    "111": Tag(Kind.OTHER, "trade_TradeAddressChangeApplied", "update_time"),
    "112": Tag(Kind.OTHER, "trade_TradeAppointment", "update_time"),
    "113": Tag(Kind.OTHER, "trade_TradeMemoModify", "update_time"),
    "200": Tag(Kind.REFUND_REQUESTED, "refund_RefundCreated", "apply_time", "refund_amount"),
    "201": Tag(Kind.OTHER, "refund_RefundAgreed", "agree_time", "refund_amount"),
    "202": Tag(Kind.OTHER, "refund_ReturnApplyAgreed", None, "refund_amount"),
    "203": Tag(Kind.OTHER, "refund_BuyerReturnGoods", None, "refund_amount"),
    "204": Tag(Kind.OTHER, "refund_RefundRefused", "refuse_time", "refund_amount"),
    "205": Tag(Kind.OTHER, "refund_ReturnApplyRefused", "refuse_time", "refund_amount"),
    "206": Tag(Kind.REFUNDED, "refund_RefundSuccess", "success_time", "refund_amount"),
    "207": Tag(Kind.OTHER, "refund_RefundClosed", "close_time", "refund_amount"),
    "208": Tag(Kind.REFUND_REQUESTED, "refund_RefundModified", "modify_time", "refund_amount"),
    "209": Tag(Kind.OTHER, "refund_ExpirationChange", None, "refund_amount"),
    "211": Tag(Kind.OTHER, "refund_ExchangeComfirmed", None, "refund_amount"),
}

# fallbacks when the tag's own time field is absent; update_time is Unix seconds on trade
# messages and RFC 3339 text on refund messages (both handled by the parser)
FALLBACK_TIME_FIELDS = ("update_time", "create_time", "modify_time")

# the tag the simulator sends for each canonical kind
TAG_FOR_KIND: dict[Kind, str] = {
    Kind.CREATED: "100",
    Kind.PAID: "101",
    Kind.SHIPPED: "102",
    Kind.ADDRESS_CHANGED: "105",
    Kind.CANCELLED: "106",
    Kind.REFUND_REQUESTED: "200",
    Kind.REFUNDED: "206",
    Kind.OTHER: "103",
}
