"""What replay, simulate, listen and doctor share: turning recordings and connector
output into HTTP requests, finding a shop's credentials, and comparing answers."""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

import connectors
from connectors.base import Outbound, Rejection
from hub.settings import Settings, Shop
from sandbox import recordings

# Headers that belong to one connection, not to the message: the client sets its own.
HOP_BY_HOP = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "expect",
    }
)


class SendError(Exception):
    """A request cannot be built (unknown platform, no way to re-sign, ...)."""


class NoAnswer(Exception):
    """A request was sent, or tried to be, and no complete answer came back."""


@dataclass(frozen=True, slots=True)
class Prepared:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes


def bare_client(**kwargs: Any) -> httpx.AsyncClient:
    """An httpx client that adds no headers of its own beyond Host and Content-Length, so
    a replayed request carries exactly the recorded ones."""
    client = httpx.AsyncClient(**kwargs)
    for name in ("accept", "accept-encoding", "user-agent"):
        del client.headers[name]
    return client


def endpoint_url(url: str, platform: str, shop: str, tail: str = "") -> str:
    """`url` as given, or the hub's webhook path under it when it has no path of its own."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        return url.rstrip("/") + f"/webhooks/{platform}/{shop}{tail}"
    return url + tail if tail and not parts.path.endswith(tail) else url


def message_headers(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in pairs if k.lower() not in HOP_BY_HOP]


def resolve_shop(
    platform: str,
    shop_name: str,
    *,
    settings: Settings | None = None,
    secret: str | None = None,
    app_key: str | None = None,
) -> Shop:
    """The shop as configured (when a config has it), with `secret`/`app_key` overriding."""
    shop = settings.shops.get(shop_name) if settings else None
    if shop is not None and shop.platform != platform:
        shop = None
    if shop is None:
        if not secret:
            raise SendError(f"no shop {shop_name!r} on {platform!r} in the config: give --secret")
        shop = Shop(name=shop_name, platform=platform, secret=secret, app_key=app_key)
    if secret:
        shop = dataclasses.replace(shop, secret=secret)
    if app_key:
        shop = dataclasses.replace(shop, app_key=app_key)
    return shop


def connector_method(platform: str, method: str) -> Any:
    connector = connectors.get(platform)
    if connector is None:
        raise SendError(f"unknown platform {platform!r} (known: {', '.join(connectors.names())})")
    fn = getattr(connector, method, None)
    if fn is None:
        raise SendError(f"the {platform} connector has no {method}()")
    return fn


def outbound_of(recording: dict[str, Any]) -> Outbound:
    headers = {k.lower(): v for k, v in message_headers(recordings.headers(recording))}
    return Outbound(headers=headers, body=recordings.body_bytes(recording))


def resign(recording: dict[str, Any], shop: Shop) -> Outbound:
    """The recorded message signed again for `shop` with a fresh timestamp."""
    platform = recording.get("platform") or ""
    fn = connector_method(platform, "resign")
    try:
        result: Outbound = fn(shop, outbound_of(recording))
    except (ValueError, Rejection) as exc:  # a secret that is not one, a body it cannot sign
        raise SendError(f"cannot re-sign this {platform} recording: {exc}") from exc
    return result


def request_for(
    recording: dict[str, Any],
    url: str,
    *,
    resign_with: str | None = None,
    resigning: bool = False,
    settings: Settings | None = None,
) -> Prepared:
    """The recorded request for `url`: as recorded, or (`resigning`, or a `resign_with`
    secret) re-signed with a fresh timestamp for the recording's shop."""
    if not (resigning or resign_with):
        return Prepared(
            recording["method"],
            url,
            message_headers(recordings.headers(recording)),
            recordings.body_bytes(recording),
        )
    shop = resolve_shop(
        recording.get("platform") or "",
        recording.get("shop") or "",
        settings=settings,
        secret=resign_with,
    )
    outbound = resign(recording, shop)
    return Prepared(recording["method"], url, list(outbound.headers.items()), outbound.body)


def prepared_from_outbound(url: str, outbound: Outbound) -> Prepared:
    return Prepared(outbound.method, url, list(outbound.headers.items()), outbound.body)


# --- comparing answers ------------------------------------------------------------------


def _lines(body: bytes) -> list[str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return [f"<{len(body)} bytes, not UTF-8>"]
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True).split(
            "\n"
        )
    except ValueError:
        return text.split("\n")


def same_answer(status_a: int | None, body_a: bytes, status_b: int | None, body_b: bytes) -> bool:
    return status_a == status_b and (body_a == body_b or _lines(body_a) == _lines(body_b))


def diff(status_a: int | None, body_a: bytes, status_b: int | None, body_b: bytes) -> str:
    """A unified diff of two answers (status line first), '' when they are the same."""
    if same_answer(status_a, body_a, status_b, body_b):
        return ""
    before = [f"status {status_a}", *_lines(body_a)]
    after = [f"status {status_b}", *_lines(body_b)]
    return "\n".join(difflib.unified_diff(before, after, "original", "replayed", lineterm="", n=2))
