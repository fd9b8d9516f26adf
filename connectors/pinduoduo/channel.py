"""Pinduoduo message service (消息服务): the WebSocket the hub opens to receive messages.

As the official Java SDK (`com.pdd.pop.sdk.message`: WsClient, WsClientEndPoint, model)
and bububa/openpdd speak it; sources and what stays unconfirmed:
docs/connectors/pinduoduo.md.

- Connect to `{message_url}/message/{client_id}/{timestamp_ms}/{sign}`, sign =
  base64(lower-hex MD5(client_id + timestamp_ms + client_secret)) — the 32-character hex
  TEXT is base64-encoded, not the 16 raw bytes; production `wss://message-api.pinduoduo.com`.
- Text frames of JSON: the server sends `{"id", "commandType": "Common"|"HeartBeat"|"Fail",
  "time", "sendTime", "message": {"type", "mallID", "content"}}`; `content` is itself a
  JSON document in a string.
- We answer a Common frame with `{"id", "commandType": "Ack", "time", "sendTime", "type",
  "mallID"}` once it is committed, or the same with `"commandType": "Fail"` and a
  `failReason` (SDK: at most 1000 chars) so it is delivered again.
- We send a HeartBeat every 5 s; when the server's heartbeats stop for
  `heartbeat_timeout_seconds` (SDK: 3 min) the connection is dropped and reopened.
- Ids and mallIDs are 64-bit: JSON is parsed with Python ints, never floats.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import websockets
from websockets.asyncio.client import connect

from connectors.base import Rejection, Reply
from connectors.channel import (
    ChannelRefused,
    ChannelStalled,
    Delivery,
    Link,
    Receive,
    dispatch,
    peer,
    send_answer,
)
from hub.model import from_unix

if TYPE_CHECKING:
    from hub.settings import Shop

log = logging.getLogger("orderhook.channels.pmc")

DEFAULT_URL = "wss://message-api.pinduoduo.com"
SDK_VERSION = "1.1.6"  # what the Java SDK's HeartBeatMessage reports as `version`
FAIL_REASON_LIMIT = 1000


class FrameError(ValueError):
    """A text frame that is not the service's JSON."""


def sign(client_id: str, timestamp_ms: str, secret: str) -> str:
    hex_text = hashlib.md5(f"{client_id}{timestamp_ms}{secret}".encode()).hexdigest()
    return base64.b64encode(hex_text.encode("ascii")).decode("ascii")


def connect_url(base: str, client_id: str, secret: str, *, timestamp_ms: int | None = None) -> str:
    ts = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    # the raw '=' stays in the path, as the Java SDK sends it (new URI(String))
    return f"{base.rstrip('/')}/message/{client_id}/{ts}/{sign(client_id, ts, secret)}"


def dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def load(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)  # ints stay exact Python ints (64-bit ids)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FrameError(f"frame is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise FrameError("frame is not a JSON object")
    return value


def heartbeat(now_ms: int | None = None) -> bytes:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return dumps({"id": now, "commandType": "HeartBeat", "time": now, "version": SDK_VERSION})


def ack_frame(
    server: dict[str, Any], *, fail_reason: str | None = None, now_ms: int | None = None
) -> bytes:
    """The Ack (or Fail) for a server frame, fields as the SDK's AckMessage; null
    fields are left out as the SDK's Jackson NON_EMPTY setting does."""
    found = server.get("message")
    message: dict[str, Any] = found if isinstance(found, dict) else {}
    fields: dict[str, Any] = {
        "id": server.get("id"),
        "commandType": "Ack" if fail_reason is None else "Fail",
        "time": int(time.time() * 1000) if now_ms is None else now_ms,
        "sendTime": server.get("sendTime"),
        "type": message.get("type"),
        "mallID": message.get("mallID"),
    }
    if fail_reason is not None:
        fields["failReason"] = fail_reason[:FAIL_REASON_LIMIT]
    return dumps({k: v for k, v in fields.items() if v is not None and v != ""})


def answer(raw: bytes, rejection: Rejection | None) -> Reply:
    """Ack when taken, Fail with the reason when not; a frame that is not JSON (or has no
    id) cannot be answered, so the reply body is empty."""
    try:
        server = load(raw)
    except FrameError:
        server = {}
    if not isinstance(server.get("id"), int):
        return Reply(200 if rejection is None else rejection.status, b"")
    if rejection is None:
        return Reply(200, ack_frame(server))
    text = f"{rejection.reason}: {rejection.detail}" if rejection.detail else rejection.reason
    return Reply(rejection.status, ack_frame(server, fail_reason=text))


def route(shops: tuple[Shop, ...], mall_id: Any) -> Shop | None:
    for shop in shops:
        if mall_id is not None and str(shop.options.get("mall_id", "")) == str(mall_id):
            return shop
    return None


class PmcChannel:
    name = "pmc"

    def link_key(self, shop: Shop) -> str | None:
        if not shop.message_url:
            return None
        return f"{shop.message_url}|{shop.app_key}"

    async def session(self, link: Link, receive: Receive, opened: Callable[[], None]) -> None:
        url = connect_url(link.url, link.app_key, link.secret)
        try:
            ws = await connect(
                url,
                open_timeout=float(link.option("open_timeout_seconds", 10)),
                ping_interval=None,  # the service's keepalive is its JSON heartbeat
                close_timeout=2,
                max_size=int(link.option("max_frame_bytes", 8 << 20)),
                proxy=link.option("proxy", None),  # direct unless the shop names a proxy
            )
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            body = bytes(exc.response.body or b"")[:200].decode("utf-8", "replace")
            raise ChannelRefused("connect_refused", f"HTTP {status} {body}".strip()) from None
        async with ws:
            opened()
            beat = asyncio.create_task(self._beat(ws, float(link.option("heartbeat_seconds", 5))))
            last_heard = [time.monotonic()]
            stalled = asyncio.Event()
            watch = asyncio.create_task(
                self._watch(
                    ws, last_heard, float(link.option("heartbeat_timeout_seconds", 180)), stalled
                )
            )
            where = peer(ws)

            async def handle(raw: bytes, received_at: datetime) -> None:
                last_heard[0] = time.monotonic()  # any frame proves the service is alive
                delivery = self._delivery(link, raw, received_at, where)
                if delivery is not None:
                    await send_answer(ws, await receive(delivery), text=True, link=link)

            try:
                await dispatch(ws, handle, float(link.option("drain_seconds", 5)))
            finally:
                beat.cancel()
                watch.cancel()
            if stalled.is_set():
                raise ChannelStalled("server heartbeats stopped")

    async def _beat(self, ws: Any, every: float) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await ws.send(heartbeat().decode())
                await asyncio.sleep(every)

    async def _watch(
        self, ws: Any, last_heard: list[float], timeout: float, stalled: asyncio.Event
    ) -> None:
        # the SDK checks every 30 s; a tenth of the timeout keeps short test timeouts exact
        while time.monotonic() - last_heard[0] <= timeout:
            await asyncio.sleep(min(30.0, timeout / 10))
        log.warning("no heartbeat from the message service for %.1f s; reconnecting", timeout)
        stalled.set()
        await ws.close(1001, "heartbeat timeout")

    def _delivery(
        self, link: Link, raw: bytes, received_at: datetime, where: str | None
    ) -> Delivery | None:
        """The frame as a Delivery for the hub, or None for heartbeats and service errors."""
        shop: Shop | None = None
        refusal: Rejection | None = None
        published: datetime | None = None
        try:
            frame = load(raw)
        except FrameError as exc:
            refusal = Rejection("malformed_frame", str(exc))
        else:
            command = frame.get("commandType")
            if command == "HeartBeat":
                return None
            if command == "Fail":
                log.warning("%s: message service reported an error: %s", link.name, frame)
                return None
            message = frame.get("message")
            if command != "Common":
                refusal = Rejection("malformed_frame", f"unknown commandType {command!r}")
            elif not isinstance(message, dict) or not isinstance(frame.get("id"), int):
                refusal = Rejection("malformed_frame", "Common frame without id or message")
            else:
                if isinstance(frame.get("time"), int):
                    published = from_unix(frame["time"], millis=True)
                shop = route(link.shops, message.get("mallID"))
                if shop is None:
                    refusal = Rejection(
                        "unknown_seller",
                        f"mallID {message.get('mallID')} matches no shop's options.mall_id",
                        status=404,
                    )
        return Delivery(
            raw=raw,
            received_at=received_at,
            path=f"/channels/{link.platform}/{shop.name if shop else '_unknown'}",
            peer=where,
            headers=[],
            shop=shop,
            published_at=published,
            refusal=None if refusal is None else (refusal, answer(raw, refusal)),
        )


channel = PmcChannel()
