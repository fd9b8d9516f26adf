"""Taobao TMC (消息服务) client: the WebSocket the hub opens to receive order messages.

The protocol as the official Java SDK (`com.taobao.api.internal.tmc` + `toplink`) and
tmc.js speak it; sources and what stays unconfirmed: docs/connectors/taobao.md.

1. Open `ws(s)://.../` (production `ws://mc.api.taobao.com/`) and send a CONNECT frame
   with custom headers `app_key`, `group_name`, `timestamp` (epoch ms, as text), `sign`
   = upper-hex MD5(secret + "app_key"+v + "group_name"+v + "timestamp"+v + secret), `sdk`.
2. The service answers CONNECTACK: a `Token` to put on every later frame, or a status
   code / phrase saying why it refused.
3. Messages arrive as SEND frames with `id` (i64), `topic`, `content` (JSON text, or
   gzip bytes), `time` (publish time), `userid`/`nick` (the seller), `publisher`, ...
4. We answer each with Confirm (`__kind`=2, `id`) once it is committed, or Failed
   (`__kind`=20, `id`, `msg` up to 128 chars) so it stays queued and comes again.
5. A PullRequest (`__kind`=1) asks for the backlog: once after connecting, then every
   `pull_seconds` (Java SDK: 15 s); WebSocket pings every `ping_seconds` (SDK: 45 s)
   find a dead connection.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import websockets
from websockets.asyncio.client import connect

from connectors.base import Rejection, Reply
from connectors.channel import (
    ChannelRefused,
    Delivery,
    Link,
    Receive,
    dispatch,
    peer,
    send_answer,
)
from connectors.taobao.frames import Frame, FrameError, MessageType, byte, decode, encode, int64

if TYPE_CHECKING:
    from hub.settings import Shop

log = logging.getLogger("orderhook.channels.tmc")

DEFAULT_URL = "ws://mc.api.taobao.com/"
DEFAULT_GROUP = "default"
SDK = "orderhook"
FAIL_TEXT_LIMIT = 128  # the Java SDK uploads at most 128 characters of the error

# custom header `__kind` values (Java SDK MessageKind)
PULL_REQUEST = 1
CONFIRM = 2
DATA = 3
FAILED = 20


def sign(secret: str, app_key: str, group_name: str, timestamp: str) -> str:
    """The CONNECT signature: TOP's md5 request signature over exactly these three keys
    (sorted: app_key < group_name < timestamp), secret at both ends, upper hex."""
    text = f"{secret}app_key{app_key}group_name{group_name}timestamp{timestamp}{secret}"
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def connect_frame(
    app_key: str,
    secret: str,
    group_name: str = DEFAULT_GROUP,
    *,
    timestamp_ms: int | None = None,
    auth_token: str | None = None,
) -> Frame:
    ts = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    headers = {
        "app_key": app_key,
        "group_name": group_name,
        "timestamp": ts,
        "sign": sign(secret, app_key, group_name, ts),
        "sdk": SDK,
    }
    if auth_token:  # the Java SDK's custom `token` header (not the session Token)
        headers["token"] = auth_token
    return Frame(MessageType.CONNECT, headers)


async def auth_token(link: Link, group_name: str) -> str | None:
    """What the Java SDK puts in the CONNECT's `token` header when it connects to
    mc.api.taobao.com: the result of API `taobao.tmc.auth.get(group)`. Option `tmc_auth`
    forces it on or off; by default it is fetched exactly when the SDK would."""
    if not link.option("tmc_auth", "mc.api.taobao.com" in link.url):
        return None
    from connectors import api_client  # the API client needs the registry: import late
    from connectors.base import ApiError

    client = api_client(link.shops[0])
    try:
        answer = await client.call("taobao.tmc.auth.get", {"group": group_name}, read=False)  # type: ignore[attr-defined]
    except ApiError as exc:
        raise ChannelRefused("auth_failed", f"taobao.tmc.auth.get: {exc}") from None
    finally:
        await client.aclose()
    body = answer.body if isinstance(answer.body, dict) else {}
    result = (body.get("tmc_auth_get_response") or {}).get("result")
    if not result:
        raise ChannelRefused("auth_failed", "taobao.tmc.auth.get answered without a result")
    return str(result)


# Header order below is the Java SDK's (HashMap order of these keys), so our frames are
# byte-identical to what the official client sends.
def pull_frame(token: str | None) -> Frame:
    return Frame(MessageType.SEND, {"__kind": byte(PULL_REQUEST)}, token=token)


def confirm_frame(token: str | None, message_id: int) -> Frame:
    return Frame(MessageType.SEND, {"id": int64(message_id), "__kind": byte(CONFIRM)}, token=token)


def failed_frame(token: str | None, message_id: int, text: str) -> Frame:
    return Frame(
        MessageType.SEND,
        {"msg": text[:FAIL_TEXT_LIMIT], "id": int64(message_id), "__kind": byte(FAILED)},
        token=token,
    )


@dataclass(frozen=True, slots=True)
class DataMessage:
    """A TMC message as the Java SDK's TmcHandler.parse reads it."""

    id: int
    topic: str
    content: str
    published_at: datetime | None
    user_id: int | None
    nick: str | None
    publisher: str | None
    data_id: str | None
    out_time: datetime | None


def data_message(frame: Frame) -> DataMessage:
    h = frame.headers
    msg_id, topic = h.get("id"), h.get("topic")
    if frame.type != MessageType.SEND or not isinstance(msg_id, int) or not topic:
        raise FrameError("not a TMC data message (a SEND frame with 'id' and 'topic')")
    content = h.get("content")
    if isinstance(content, bytes):
        try:
            content = gzip.decompress(content).decode("utf-8")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise FrameError(f"gzip content does not inflate to UTF-8 text: {exc}") from exc
    if not isinstance(content, str):
        raise FrameError("message has no content")
    user_id = h.get("userid")
    return DataMessage(
        id=msg_id,
        topic=str(topic),
        content=content,
        published_at=_moment(h.get("time")),
        user_id=user_id if isinstance(user_id, int) else None,
        nick=h.get("nick") if isinstance(h.get("nick"), str) else None,
        publisher=h.get("publisher") if isinstance(h.get("publisher"), str) else None,
        data_id=None if h.get("dataid") is None else str(h.get("dataid")),
        out_time=_moment(h.get("outtime")),
    )


def _moment(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def answer(raw: bytes, token: str | None, rejection: Rejection | None) -> Reply:
    """The reply to a received frame: Confirm when taken, Failed (with the reason) when
    not; an undecodable frame has no id to answer, so the reply body is empty."""
    try:
        message_id = decode(raw).headers.get("id")
    except FrameError:
        message_id = None
    if rejection is None:
        if not isinstance(message_id, int):
            return Reply(200, b"", "application/octet-stream")
        return Reply(200, encode(confirm_frame(token, message_id)), "application/octet-stream")
    if not isinstance(message_id, int):
        return Reply(rejection.status, b"", "application/octet-stream")
    text = f"{rejection.reason}: {rejection.detail}" if rejection.detail else rejection.reason
    return Reply(
        rejection.status, encode(failed_frame(token, message_id, text)), "application/octet-stream"
    )


def route(shops: tuple[Shop, ...], user_id: int | None, nick: str | None) -> Shop | None:
    """The shop a message belongs to: `options.seller_id` (TMC `userid`) first, then
    `options.seller_nick` (TMC `nick`)."""
    for shop in shops:
        if user_id is not None and str(shop.options.get("seller_id", "")) == str(user_id):
            return shop
    for shop in shops:
        if nick and shop.options.get("seller_nick") == nick:
            return shop
    return None


class TmcChannel:
    name = "tmc"

    def link_key(self, shop: Shop) -> str | None:
        if not shop.message_url:
            return None
        group = shop.options.get("group_name", DEFAULT_GROUP)
        return f"{shop.message_url}|{shop.app_key}|{group}"

    async def session(self, link: Link, receive: Receive, opened: Callable[[], None]) -> None:
        group = str(link.option("group_name", DEFAULT_GROUP))
        token_for_connect = await auth_token(link, group)
        async with connect(
            link.url,
            open_timeout=float(link.option("open_timeout_seconds", 10)),
            ping_interval=float(link.option("ping_seconds", 45)),
            ping_timeout=float(link.option("ping_timeout_seconds", 20)),
            close_timeout=2,
            max_size=int(link.option("max_frame_bytes", 8 << 20)),
            proxy=link.option("proxy", None),  # direct unless the shop names a proxy
        ) as ws:
            await ws.send(
                encode(
                    connect_frame(link.app_key, link.secret, group, auth_token=token_for_connect)
                )
            )
            token = await self._connected(ws, link)
            opened()
            where = peer(ws)
            pulling = asyncio.create_task(self._pull(ws, token, link))

            async def handle(raw: bytes, received_at: datetime) -> None:
                delivery = self._delivery(link, token, raw, received_at, where)
                if delivery is not None:
                    await send_answer(ws, await receive(delivery), text=False, link=link)

            try:
                await dispatch(ws, handle, float(link.option("drain_seconds", 5)))
            finally:
                pulling.cancel()

    async def _connected(self, ws: Any, link: Link) -> str:
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
            # lands as the frame arrives, and a stopping hub would wait forever
            async with asyncio.timeout(float(link.option("open_timeout_seconds", 10))):
                first = await ws.recv()
        except websockets.ConnectionClosed as exc:
            raise ChannelRefused("connect_closed", f"closed before CONNECTACK ({exc})") from None
        try:
            ack = decode(first if isinstance(first, bytes) else first.encode())
        except FrameError as exc:
            raise ChannelRefused("protocol_error", f"answer to CONNECT: {exc}") from None
        if ack.type != MessageType.CONNECTACK:
            raise ChannelRefused("protocol_error", f"expected CONNECTACK, got {ack.type.name}")
        if ack.refused:
            raise ChannelRefused(
                "connect_refused",
                f"status {ack.status_code}: {ack.status_phrase or '(no phrase)'}",
            )
        if not ack.token:
            raise ChannelRefused("protocol_error", "CONNECTACK without a token")
        return ack.token

    async def _pull(self, ws: Any, token: str, link: Link) -> None:
        every = float(link.option("pull_seconds", 15))
        frame = encode(pull_frame(token))
        while True:
            await ws.send(frame)
            await asyncio.sleep(every)

    def _delivery(
        self, link: Link, token: str, raw: bytes, received_at: datetime, where: str | None
    ) -> Delivery | None:
        """The frame as a Delivery for the hub, or None for protocol chatter."""
        shop: Shop | None = None
        refusal: Rejection | None = None
        published: datetime | None = None
        try:
            frame = decode(raw)
        except FrameError as exc:
            refusal = Rejection("malformed_frame", str(exc))
        else:
            if frame.type != MessageType.SEND or "topic" not in frame.headers:
                if frame.refused:  # the service reports an error about something we sent
                    log.warning(
                        "%s: TMC error %s %s", link.name, frame.status_code, frame.status_phrase
                    )
                return None
            try:
                message = data_message(frame)
            except FrameError as exc:
                refusal = Rejection("malformed_frame", str(exc))
            else:
                published = message.published_at
                shop = route(link.shops, message.user_id, message.nick)
                if shop is None:
                    refusal = Rejection(
                        "unknown_seller",
                        f"userid {message.user_id} nick {message.nick!r} matches no shop's "
                        "options.seller_id / seller_nick",
                        status=404,
                    )
        return Delivery(
            raw=raw,
            received_at=received_at,
            path=f"/channels/{link.platform}/{shop.name if shop else '_unknown'}",
            peer=where,
            headers=[("token", token)],
            shop=shop,
            published_at=published,
            refusal=None if refusal is None else (refusal, answer(raw, token, refusal)),
        )


channel = TmcChannel()
