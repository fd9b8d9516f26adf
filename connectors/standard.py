"""Standard Webhooks (standardwebhooks.com): the scheme any modern sender can speak.

Rules (spec v1.0.0, and the official `standardwebhooks` Python package):
- headers `webhook-id`, `webhook-timestamp` (Unix seconds), `webhook-signature`;
- signed content `{id}.{timestamp}.{body}`, HMAC-SHA256, base64, prefixed `v1,`;
- the signature header may hold several space-separated signatures (key rotation);
- secrets are `whsec_` + base64 of the key bytes;
- timestamps more than 5 minutes away from now are refused (replay protection).

Body: the spec's envelope `{"type", "timestamp", "data"}`. orderhook's order events use
`type` = `order.<kind>` and `data` = {order_id, amount, currency, occurred_at, ...};
see docs/connectors/standard.md.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from connectors import forensics
from connectors.base import Inbound, Outbound, Rejection, Reply, json_reply
from hub.model import Kind, OrderEvent, iso_utc, message_key, parse_iso, to_decimal, utcnow

if TYPE_CHECKING:
    from hub.settings import Shop

TOLERANCE_SECONDS = 5 * 60
ACK = json_reply(200, {"ok": True})

KINDS = {
    "order.created": Kind.CREATED,
    "order.paid": Kind.PAID,
    "order.cancelled": Kind.CANCELLED,
    "order.refund_requested": Kind.REFUND_REQUESTED,
    "order.refunded": Kind.REFUNDED,
    "order.shipped": Kind.SHIPPED,
    "order.address_changed": Kind.ADDRESS_CHANGED,
}


@functools.lru_cache(maxsize=1024)  # decoded once per secret, not once per push
def secret_bytes(secret: str) -> bytes:
    """Key bytes of a `whsec_...` secret (the spec's form); a bare base64 string works too."""
    text = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("a Standard Webhooks secret is 'whsec_' followed by base64") from exc
    if not key:
        raise ValueError("empty Standard Webhooks secret")
    return key


def signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    # hmac.new, not the one-shot hmac.digest: that one releases the GIL even for a small
    # message, and taking it back costs a wait on the writer thread (seen with py-spy)
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_headers(
    secret: str, msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """Headers a Standard Webhooks sender puts on `body` (for the simulator and replay)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": signature(secret_bytes(secret), msg_id, ts, body),
        "content-type": "application/json",
    }


class StandardWebhooks:
    name: ClassVar[str] = "standard"
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)

    def verify(self, msg: Inbound) -> None:
        msg_id = msg.header("webhook-id")
        ts = msg.header("webhook-timestamp")
        sig_header = msg.header("webhook-signature")
        if not (msg_id and ts and sig_header):
            missing = [
                h
                for h, v in (
                    ("webhook-id", msg_id),
                    ("webhook-timestamp", ts),
                    ("webhook-signature", sig_header),
                )
                if not v
            ]
            raise Rejection("missing_signature", "missing header " + ", ".join(missing), status=401)
        if not ts.isdigit():
            raise Rejection("bad_timestamp", f"webhook-timestamp {ts!r} is not Unix seconds")
        skew = int(ts) - time.time()
        if skew < -TOLERANCE_SECONDS:
            raise Rejection(
                "stale_timestamp", f"timestamp is {int(-skew)} s old (limit 300 s)", status=401
            )
        if skew > TOLERANCE_SECONDS:
            raise Rejection(
                "future_timestamp", f"timestamp is {int(skew)} s ahead (limit 300 s)", status=401
            )
        offered = [
            part.split(",", 1)[1]
            for part in sig_header.split()
            if part.startswith("v1,") and len(part) > 3
        ]
        if not offered:
            raise Rejection("bad_signature", "no v1 signature in webhook-signature", status=401)
        keys = [secret_bytes(s) for s in msg.shop.all_secrets()]
        for key in keys:
            expected = signature(key, msg_id, ts, msg.body).split(",", 1)[1]
            if any(hmac.compare_digest(expected, o) for o in offered):
                return
        raise Rejection(
            "bad_signature",
            "no signature matches the shop's secret",
            status=401,
            forensics=self._forensics(msg, msg_id, ts, offered),
        )

    def _forensics(self, msg: Inbound, msg_id: str, ts: str, offered: list[str]) -> str | None:
        """Which near-miss (another algorithm, another shop's secret) produced a signature."""
        prefix = f"{msg_id}.{ts}.".encode()
        correct = _signer(lambda key: _b64(hmac.new(key, prefix + msg.body, hashlib.sha256)))
        for candidate in offered:
            found = forensics.explain(
                candidate, msg.shop, msg.peers, correct, variant_signers(prefix, msg.body)
            )
            if found:
                return found
        return None

    def parse(self, msg: Inbound) -> list[OrderEvent]:
        envelope, text = _load_json(msg.body)
        if not isinstance(envelope, dict):
            raise Rejection("malformed_body", "body is not a JSON object")
        kind_text = envelope.get("type")
        data = envelope.get("data")
        if not isinstance(kind_text, str) or not isinstance(data, dict):
            raise Rejection("malformed_body", "envelope needs 'type' (string) and 'data' (object)")
        order_id = data.get("order_id")
        if order_id is None or order_id == "" or isinstance(order_id, bool | float | Decimal):
            raise Rejection("malformed_body", "data.order_id must be a string or an integer")
        when = data.get("occurred_at") or envelope.get("timestamp")
        try:
            occurred = parse_iso(when) if isinstance(when, str) else msg.received_at
            amount = to_decimal(data.get("amount"))
        except ValueError as exc:
            raise Rejection("malformed_body", str(exc)) from exc
        msg_id = msg.header("webhook-id")
        return [
            OrderEvent(
                platform=self.name,
                shop=msg.shop.name,
                kind=KINDS.get(kind_text, Kind.OTHER),
                order_id=str(order_id),
                occurred_at=occurred,
                platform_type=kind_text,
                message_id=msg_id,
                amount=amount,
                currency=data.get("currency") if amount is not None else None,
                payload=envelope,
                payload_text=text,
                dedupe_key=message_key(self.name, msg.shop.name, msg_id),
            )
        ]

    def ack(self, msg: Inbound) -> Reply:
        return ACK

    def check_ack(self, status: int, body: bytes) -> str | None:
        """The spec counts any 2xx as delivered, whatever the body says."""
        return None if 200 <= status < 300 else f"status {status} is not 2xx"

    def reject(self, msg: Inbound | None, rejection: Rejection) -> Reply:
        return json_reply(
            rejection.status, {"error": {"reason": rejection.reason, "detail": rejection.detail}}
        )

    # --- sandbox ----------------------------------------------------------------------

    def simulate(
        self,
        shop: Shop,
        kind: Kind,
        order_id: str,
        *,
        amount: Decimal | None = None,
        occurred_at: datetime | None = None,
        message_id: str | None = None,
    ) -> Outbound:
        when = iso_utc(occurred_at or utcnow())
        data: dict[str, Any] = {"order_id": order_id, "occurred_at": when}
        if amount is not None:
            data |= {"amount": str(amount), "currency": "CNY"}
        body = json.dumps(
            {"type": TYPE_FOR_KIND[kind], "timestamp": when, "data": data}, separators=(",", ":")
        ).encode()
        msg_id = message_id or "msg_" + uuid.uuid4().hex
        return Outbound(headers=sign_headers(shop.secret, msg_id, body), body=body)

    def resign(self, shop: Shop, outbound: Outbound) -> Outbound:
        """The same message (same id and body) with a fresh timestamp and shop.secret."""
        msg_id = next(
            (v for k, v in outbound.headers.items() if k.lower() == "webhook-id"),
            "msg_" + uuid.uuid4().hex,
        )
        headers = {
            k: v
            for k, v in outbound.headers.items()
            if k.lower() not in ("webhook-id", "webhook-timestamp", "webhook-signature")
        }
        headers.update(sign_headers(shop.secret, msg_id, outbound.body))
        return Outbound(headers=headers, body=outbound.body, tail=outbound.tail)

    def variants(self, shop: Shop, outbound: Outbound) -> dict[str, Outbound]:
        h = outbound.headers
        prefix = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode()
        out = {}
        for variant in variant_signers(prefix, outbound.body):
            value = variant.sign(shop, shop.secret)
            if value is not None:
                headers = {**h, "webhook-signature": "v1," + value}
                out[variant.label] = Outbound(headers=headers, body=outbound.body)
        return out


TYPE_FOR_KIND = {kind: name for name, kind in KINDS.items()} | {Kind.OTHER: "order.other"}


def _b64(mac: hmac.HMAC) -> str:
    return base64.b64encode(mac.digest()).decode()


def _signer(compute: Callable[[bytes], str]) -> forensics.Signer:
    """A Signer from a function of the key bytes; a secret that is not valid base64 (a
    peer's, in forensics) signs nothing."""

    def sign(shop: Shop, secret: str) -> str | None:
        try:
            return compute(secret_bytes(secret))
        except ValueError:
            return None

    return sign


def variant_signers(prefix: bytes, body: bytes) -> list[forensics.Variant]:
    """Ways senders get the signature wrong (each returns the base64 after `v1,`)."""
    return [
        forensics.Variant(
            "secret-text-key",
            "sender keyed HMAC with the secret's text, not its base64-decoded bytes",
            lambda shop, secret: _b64(hmac.new(secret.encode(), prefix + body, hashlib.sha256)),
        ),
        forensics.Variant(
            "hex-digest",
            "HMAC-SHA256 sent as hex instead of base64",
            _signer(lambda key: hmac.new(key, prefix + body, hashlib.sha256).hexdigest()),
        ),
        forensics.Variant(
            "body-only",
            "HMAC-SHA256 over the body alone, without '{id}.{timestamp}.' in front",
            _signer(lambda key: _b64(hmac.new(key, body, hashlib.sha256))),
        ),
    ]


# one decoder for every push: json.loads(parse_float=...) would build a new one each time
_DECODER = json.JSONDecoder(parse_float=Decimal)
# msgspec parses the same JSON to the same values (floats as exact Decimals too) in a third
# of the time: the parse was a tenth of the ingest writer's CPU (py-spy on bench.writer)
_FAST = msgspec.json.Decoder(float_hook=Decimal)


def _load_json(body: bytes) -> tuple[Any, str | None]:
    """The body's JSON value, and its text when that is UTF-8 (stored as the payload)."""
    encoding = json.detect_encoding(body)
    try:
        text = body.decode(encoding, "surrogatepass")
        if encoding == "utf-8":
            try:
                return _FAST.decode(body), text
            except Exception:  # DecodeError, UnicodeDecodeError, too deep: see below
                # the standard decoder decides: it takes a little more than RFC 8259
                # (NaN, lone surrogates), and its error is the one we have always given
                pass
        return _DECODER.decode(text), text if encoding == "utf-8" else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejection("malformed_body", f"invalid JSON: {exc}") from exc


connector = StandardWebhooks()
