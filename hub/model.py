"""Canonical types: what every platform's message becomes once it is verified and parsed.

Times are UTC everywhere past this module. Chinese platforms send Beijing wall time
(Asia/Shanghai, no DST since 1991); connectors convert it here, once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Kind(StrEnum):
    CREATED = "created"
    PAID = "paid"
    CANCELLED = "cancelled"
    REFUND_REQUESTED = "refund_requested"
    REFUNDED = "refunded"
    SHIPPED = "shipped"
    ADDRESS_CHANGED = "address_changed"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One change to one platform order, as the hub understands it.

    `platform_type` keeps the platform's own name for the message (a tag, a topic),
    so an unmapped type (kind OTHER) is still findable and countable.
    `dedupe_key` is what makes a redelivery a duplicate; connectors set it when the
    platform has a stable message id, otherwise it is a hash of the normalised event.
    """

    platform: str
    shop: str
    kind: Kind
    order_id: str
    occurred_at: datetime
    platform_type: str
    message_id: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    payload: Any = None
    dedupe_key: str = ""
    source: str = "push"
    extra: dict[str, Any] = field(default_factory=dict)
    # the payload's JSON text exactly as the platform sent it, when the payload is the
    # whole body: stored as is instead of re-encoding `payload` (byte for byte, and the
    # hot path skips a canonical re-encode)
    payload_text: str | None = None

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware (convert with hub.model helpers)")
        if self.occurred_at.utcoffset():
            object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))
        if not self.dedupe_key:
            object.__setattr__(self, "dedupe_key", content_key(self))

    def payload_json(self) -> str:
        return self.payload_text if self.payload_text is not None else canonical_json(self.payload)

    def payload_sha(self) -> str:
        return hashlib.sha256(self.payload_json().encode()).hexdigest()


def canonical_json(value: Any) -> str:
    """Compact, key-sorted, UTF-8 JSON; Decimals kept exact as JSON numbers."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # exact text; json has no Decimal type, so a string is the only lossless form
        return str(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def content_key(event: OrderEvent) -> str:
    """Dedupe key from the normalised event itself: the same change to the same order at
    the same second is one event whichever path brought it (a push, a channel message or
    reconciliation), so a change the pushes delivered is not counted again when the
    safety-net poll sees it. The platform's own type only tells apart unmapped events."""
    parts = [
        event.platform,
        event.shop,
        event.order_id,
        event.kind.value,
        event.platform_type if event.kind is Kind.OTHER else "",
        event.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]
    return "h:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def message_key(platform: str, shop: str, message_id: str, index: int = 0) -> str:
    """Dedupe key from a platform message id (index: position of the event in the message)."""
    return f"m:{platform}:{shop}:{message_id}:{index}"


def iso_utc(moment: datetime) -> str:
    """`2026-11-25T10:18:13.123456Z`: the one text form of a time in the store."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utcnow() -> datetime:
    return datetime.now(UTC)


def shanghai_to_utc(wall: str | datetime) -> datetime:
    """Beijing wall time (`2026-11-11 00:00:05`, or a naive datetime) to an aware UTC datetime.

    A value that already carries an offset is converted, not reinterpreted.
    """
    if isinstance(wall, str):
        text = wall.strip().replace("T", " ")
        moment = datetime.fromisoformat(text)
    else:
        moment = wall
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SHANGHAI)
    return moment.astimezone(UTC)


def from_unix(value: int | str | float, *, millis: bool = False) -> datetime:
    """Unix seconds (or milliseconds) to UTC; accepts the string forms platforms send."""
    number = Decimal(str(value))
    if millis:
        number = number / 1000
    return datetime.fromtimestamp(float(number), UTC)


def parse_iso(text: str, *, naive_zone: ZoneInfo | None = None) -> datetime:
    """ISO 8601 with `Z` or an offset; a naive value is read in `naive_zone` (default UTC)."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=naive_zone or UTC)
    return moment.astimezone(UTC)


def to_decimal(value: Any) -> Decimal | None:
    """Amounts as exact Decimals; None for absent values. Raises ValueError on garbage."""
    if value is None or value == "":
        return None
    if isinstance(value, float):
        # only reached when a caller parsed JSON with floats; repr round-trips the shortest form
        value = repr(value)
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc


def fen_to_yuan(value: Any) -> Decimal | None:
    """Chinese platforms send money in fen (1/100 yuan) as integers."""
    amount = to_decimal(value)
    return None if amount is None else (amount / 100).quantize(Decimal("0.01"))
