"""What Daojia would send: signed form pushes for the simulator, and the signature
variants forensics and `doctor` try (JOS's other sign methods, hex case, secret placement,
a re-serialised jd_param_json)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlencode

from connectors.base import Outbound
from connectors.forensics import Variant
from connectors.jddj.messages import MESSAGE_FOR_KIND, STATUS_FOR_MESSAGE
from connectors.jddj.signing import sign, sign_string
from hub.model import SHANGHAI, Kind, utcnow

if TYPE_CHECKING:
    from hub.settings import Shop

FORM = "application/x-www-form-urlencoded"
PARAM_ORDER = ("token", "app_key", "sign", "timestamp", "format", "v", "jd_param_json")


def beijing(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def encode(params: dict[str, str]) -> bytes:
    ordered = [n for n in PARAM_ORDER if n in params] + sorted(set(params) - set(PARAM_ORDER))
    return urlencode([(n, params[n]) for n in ordered]).encode()


def replace_params(body: bytes, values: dict[str, str]) -> bytes:
    """The form `body` with each parameter named in `values` set to its value, in place;
    every other byte stays as sent (another sender's escaping, order and case survive).
    A name the body lacks is added at the end."""
    segments = body.split(b"&") if body else []
    missing = dict(values)
    for index, segment in enumerate(segments):
        name = unquote_plus(segment.split(b"=", 1)[0].decode("utf-8", "replace"))
        if name in missing:
            segments[index] = urlencode({name: missing.pop(name)}).encode()
    segments += [urlencode({name: value}).encode() for name, value in missing.items()]
    return b"&".join(segments)


def push(
    shop: Shop,
    kind: Kind,
    order_id: str,
    *,
    occurred_at: datetime | None,
) -> Outbound:
    message = MESSAGE_FOR_KIND.get(kind)
    if message is None:
        known = ", ".join(k.value for k in MESSAGE_FOR_KIND)
        raise ValueError(f"Daojia has no message known to carry kind {kind.value} ({known})")
    when = (occurred_at or utcnow()).astimezone(UTC)
    data: dict[str, Any] = {"billId": order_id}
    if message in STATUS_FOR_MESSAGE:
        data["statusId"] = STATUS_FOR_MESSAGE[message]
    data["timestamp"] = beijing(when)
    params = {
        "token": str(shop.options.get("token", "simulated-token")),
        "app_key": shop.app_key or "",
        "timestamp": beijing(utcnow()),
        "format": "json",
        "v": "1.0",
        "jd_param_json": json.dumps(data, ensure_ascii=False, separators=(",", ":")),
    }
    params["sign"] = sign(params, shop.secret)
    return Outbound(headers={"content-type": FORM}, body=encode(params), tail=f"/djsw/{message}")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _hmac(secret: str, text: str, algorithm: str) -> str:
    return hmac.new(secret.encode(), text.encode(), algorithm).hexdigest().upper()


def _reserialised(params: dict[str, str]) -> dict[str, str] | None:
    """The params as a sender that re-serialises jd_param_json before signing sees them."""
    raw = params.get("jd_param_json")
    if raw is None:
        return None
    try:
        value = json.loads(raw, parse_float=Decimal)
    except json.JSONDecodeError:
        return None
    for text in (
        json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str),
        json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str),
        json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str),
        json.dumps(value, ensure_ascii=False, default=str),
    ):
        if text != raw:
            return {**params, "jd_param_json": text}
    return None


def variant_signers(params: dict[str, str]) -> list[Variant]:
    text = sign_string(params)
    other = _reserialised(params)
    return [
        Variant(
            "lower-hex",
            "the right MD5 in lower-case hex (Daojia sends upper case)",
            lambda shop, secret: _md5(secret + text + secret),
        ),
        Variant(
            "hmacmd5",
            "HMAC-MD5 keyed with the secret over the sorted string (JOS sign_method "
            "hmacmd5; Daojia uses md5: the algorithm changed?)",
            lambda shop, secret: _hmac(secret, text, "md5"),
        ),
        Variant(
            "hmacsha256",
            "HMAC-SHA256 keyed with the secret over the sorted string (JOS sign_method "
            "hmacsha256; Daojia uses md5: the algorithm changed?)",
            lambda shop, secret: _hmac(secret, text, "sha256"),
        ),
        Variant(
            "secret-suffix-only",
            "MD5(string + secret): the secret only at the end, not at both ends",
            lambda shop, secret: _md5(text + secret).upper(),
        ),
        Variant(
            "reserialised-param-json",
            "signed over jd_param_json re-serialised, not the text that was sent",
            (lambda shop, secret: _md5(secret + sign_string(other) + secret).upper())
            if other is not None
            else (lambda shop, secret: None),
        ),
    ]
