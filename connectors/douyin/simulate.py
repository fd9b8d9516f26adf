"""What Douyin would send: push bodies for the simulator, and the signature variants that
forensics and `doctor` try (each a way a sender can get event-sign wrong)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from connectors.douyin.signing import event_sign, pattern
from connectors.douyin.tags import TAG_FOR_KIND, TAGS
from connectors.forensics import Variant, hmac_hex, md5_hex
from hub.model import SHANGHAI, Kind, utcnow

# order_status the official SDK's examples carry for each trade tag
ORDER_STATUS = {"100": 1, "101": 2, "102": 3, "103": 5, "105": 2, "106": 4}


def push_body(
    kind: Kind,
    order_id: str,
    *,
    amount: Decimal | None = None,
    occurred_at: datetime | None = None,
    message_id: str | None = None,
) -> bytes:
    """A one-record push body, shaped like the official Java SDK reads it."""
    tag = TAG_FOR_KIND[kind]
    spec = TAGS[tag]
    when = (occurred_at or utcnow()).astimezone(UTC)
    seconds = int(when.timestamp())
    pid: int | str = int(order_id) if order_id.isdigit() else order_id
    data: dict[str, Any] = {"p_id": pid, "shop_id": 95250}
    if tag.startswith("2"):
        data |= {
            "s_id": pid,
            "aftersale_id": seconds * 1000 + 7,
            "aftersale_type": 2,
            "update_time": when.astimezone(SHANGHAI).isoformat(timespec="seconds"),
        }
    else:
        data |= {"s_ids": [pid], "order_type": 0, "biz": 2, "order_status": ORDER_STATUS.get(tag)}
    if spec.time_field:
        data[spec.time_field] = seconds
    if spec.amount_field and amount is not None:
        data[spec.amount_field] = int(amount * 100)
    record = {
        "tag": tag,
        "msg_id": message_id or uuid.uuid4().hex,
        "data": json.dumps(data, ensure_ascii=False, separators=(",", ":")),
    }
    return json.dumps([record], ensure_ascii=False, separators=(",", ":")).encode()


def _reserialised(body: bytes, *, ascii_only: bool) -> bytes | None:
    """The body as a sender that re-serialises JSON would sign it (None: same bytes)."""
    try:
        value = json.loads(body, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    text = json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":"), default=str)
    again = text.encode()
    return None if again == body else again


def variant_signers(body: bytes) -> list[Variant]:
    """Every other way a sender is known (or likely) to compute event-sign for `body`."""
    compact = _reserialised(body, ascii_only=False)
    escaped = _reserialised(body, ascii_only=True)

    def over(other: bytes | None) -> Any:
        if other is None:
            return lambda shop, secret: None
        return lambda shop, secret: event_sign(shop.app_key, secret, other)

    return [
        Variant(
            "upper-hex",
            "the right MD5 in upper-case hex (Douyin sends lower case)",
            lambda shop, secret: event_sign(shop.app_key, secret, body).upper(),
        ),
        Variant(
            "hmac-sha256",
            "HMAC-SHA256 of the body keyed with the app secret (the API's sign method, "
            "not the push's md5: the platform changed its algorithm?)",
            lambda shop, secret: hmac_hex(secret, body, "sha256"),
        ),
        Variant(
            "hmac-sha256-pattern",
            "HMAC-SHA256 keyed with the app secret over app_key + body + secret",
            lambda shop, secret: hmac_hex(secret, pattern(shop.app_key, body, secret), "sha256"),
        ),
        Variant(
            "hmac-md5",
            "HMAC-MD5 of the body keyed with the app secret",
            lambda shop, secret: hmac_hex(secret, body, "md5"),
        ),
        Variant(
            "reserialised-body",
            "MD5 over the JSON re-serialised (compact) instead of the raw bytes received",
            over(compact),
        ),
        Variant(
            "escaped-body",
            "MD5 over the JSON re-serialised with \\u escapes instead of the raw bytes",
            over(escaped),
        ),
        Variant(
            "swapped-key-secret",
            "MD5(app_secret + body + app_key): app key and secret swapped",
            lambda shop, secret: md5_hex(secret.encode() + body + (shop.app_key or "").encode()),
        ),
        Variant(
            "no-app-key",
            "MD5(body + app_secret) without the app key in front",
            lambda shop, secret: md5_hex(body + secret.encode()),
        ),
    ]
