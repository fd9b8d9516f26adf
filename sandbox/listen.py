"""`orderhook listen`: follow a running hub's request stream and forward each push to a
developer's local endpoint, re-signed for it, printing each exchange (as Stripe CLI's
`listen --forward-to` does).

The hub streams recordings over SSE (`/api/stream/requests`, hub/stream.py). When the
stream drops, we reconnect with `Last-Event-ID` so no push is skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from hub.settings import Settings
from sandbox import recordings
from sandbox.sending import (
    Prepared,
    SendError,
    bare_client,
    endpoint_url,
    request_for,
)

RECONNECT_SECONDS = 1.0


class StreamError(Exception):
    """The hub refused the stream (bad token, wrong role, not an orderhook hub)."""


@dataclass(frozen=True, slots=True)
class Exchange:
    request_id: int
    platform: str
    shop: str
    url: str
    status: int | None
    body: bytes
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        text, encoding = recordings.encode_body(self.body)
        return {
            "request_id": self.request_id,
            "platform": self.platform,
            "shop": self.shop,
            "url": self.url,
            "status": self.status,
            "body": text,
            "body_encoding": encoding,
            "error": self.error,
        }

    def line(self) -> str:
        head = f"#{self.request_id} {self.platform}/{self.shop} -> {self.url}"
        if self.status is None:
            return f"{head}  failed: {self.error}"
        return f"{head}  {self.status} {self.body[:120].decode('utf-8', 'replace')}"


@dataclass(frozen=True, slots=True)
class Forwarding:
    forward_to: str
    secret: str | None = None  # re-sign for the local endpoint; None: forward as recorded
    settings: Settings | None = None
    platform: str | None = None
    shop: str | None = None


def prepare(rec: dict[str, Any], fwd: Forwarding) -> Prepared:
    url = endpoint_url(fwd.forward_to, rec.get("platform") or "", rec.get("shop") or "")
    return request_for(rec, url, resign_with=fwd.secret, settings=fwd.settings)


async def forward(client: httpx.AsyncClient, rec: dict[str, Any], fwd: Forwarding) -> Exchange:
    platform, shop = rec.get("platform") or "", rec.get("shop") or ""
    try:
        req = prepare(rec, fwd)
    except SendError as exc:
        return Exchange(rec["id"], platform, shop, fwd.forward_to, None, b"", str(exc))
    try:
        response = await client.request(req.method, req.url, headers=req.headers, content=req.body)
    except httpx.HTTPError as exc:
        return Exchange(rec["id"], platform, shop, req.url, None, b"", f"{type(exc).__name__}")
    return Exchange(rec["id"], platform, shop, req.url, response.status_code, response.content)


async def follow(
    hub_url: str,
    token: str,
    fwd: Forwarding,
    *,
    outcome: str = "accepted",
    after: int | None = None,
    count: int = 0,
    on_exchange: Callable[[Exchange], None] = lambda e: None,
    on_connect: Callable[[], None] = lambda: None,
    hub_transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Forward pushes until `count` were forwarded (0: until cancelled); returns how many."""
    done = 0
    connected = False
    last_id = None if after is None else str(after)
    headers = {"authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(10.0, read=None)  # the stream is quiet between pushes
    async with (
        httpx.AsyncClient(base_url=hub_url, timeout=timeout, transport=hub_transport) as hub,
        bare_client(timeout=10.0) as local,
    ):
        while True:
            params = {"outcome": outcome}
            if last_id is not None:
                params["after"] = last_id
            try:
                async with aconnect_sse(
                    hub, "GET", "/api/stream/requests", headers=headers, params=params
                ) as source:
                    if source.response.status_code != 200:
                        await source.response.aread()
                        raise StreamError(
                            f"{hub_url} answered {source.response.status_code}: "
                            f"{source.response.text[:200]}"
                        )
                    connected = True
                    on_connect()
                    async for sse in source.aiter_sse():
                        if sse.event != "request":
                            continue
                        last_id = sse.id or last_id
                        rec = json.loads(sse.data)
                        if fwd.platform and rec.get("platform") != fwd.platform:
                            continue
                        if fwd.shop and rec.get("shop") != fwd.shop:
                            continue
                        on_exchange(await forward(local, rec, fwd))
                        done += 1
                        if count and done >= count:
                            return done
            except httpx.TransportError as exc:
                if not connected:  # never reached: a wrong URL, not a dropped stream
                    raise StreamError(f"cannot reach {hub_url}: {type(exc).__name__}") from None
                await asyncio.sleep(RECONNECT_SECONDS)
