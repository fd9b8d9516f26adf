"""What a platform's message-channel client and the hub's channel service share.

Taobao (TMC) and Pinduoduo do not POST to us: we open a WebSocket to their message
service and they push on it. Each platform's client (`connectors/<platform>/...`) knows
the wire; `hub/channels.py` knows the pipeline. Between them:

- `Link`: one connection and the shops whose messages arrive on it (one app key can
  carry many sellers, so shops that share app key, URL and group share a link);
- `Delivery`: one inbound frame as received, with the shop it belongs to (or why it
  belongs to none) and the frame to answer with when the hub cannot take it;
- `Receive`: the hub's callback; it records and commits the delivery and returns the
  `Reply` whose body is the frame to send back (confirm or fail), or None;
- `ChannelRefused`: the service refused our connect (bad signature, unknown app).

A client's `session(link, receive, opened)` runs one connection until it ends; the hub
reconnects with backoff. A client never touches the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import websockets

from connectors.base import Inbound, Rejection, Reply, json_reply
from hub.model import utcnow

if TYPE_CHECKING:
    from hub.settings import Shop

# how a channel message is recorded and shown to connectors (HTTP pushes are POST)
METHOD = "WS"


@dataclass(frozen=True)
class Link:
    platform: str
    channel: str  # the channel's name in recordings and metrics: "tmc", "pmc"
    url: str
    app_key: str
    secret: str
    shops: tuple[Shop, ...]
    options: dict[str, Any] = field(default_factory=dict)
    key: str = ""  # the channel's link key (URL, app key, group): what makes it one link

    @property
    def name(self) -> str:
        return f"{self.platform}|{self.key or self.app_key}"

    def option(self, key: str, default: Any) -> Any:
        return self.options.get(key, default)


@dataclass(slots=True)
class Delivery:
    raw: bytes
    received_at: datetime
    path: str
    peer: str | None
    headers: list[tuple[str, str]]
    shop: Shop | None
    published_at: datetime | None = None
    # set when the client already knows the hub cannot take the message: the reason to
    # record and the reply (its body is the frame to answer with, possibly empty)
    refusal: tuple[Rejection, Reply] | None = None


Receive = Callable[[Delivery], Awaitable[Reply | None]]


class ChannelRefused(Exception):
    """The message service refused our connect; `reason` is machine-readable."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ChannelStalled(Exception):
    """The connection is open but the service stopped talking (heartbeats stopped)."""


class Channel(Protocol):
    name: str

    def link_key(self, shop: Shop) -> str | None: ...

    async def session(self, link: Link, receive: Receive, opened: Callable[[], None]) -> None: ...


log = logging.getLogger("orderhook.channels")

Handle = Callable[[bytes, datetime], Coroutine[Any, Any, None]]


async def dispatch(ws: Any, handle: Handle, drain_seconds: float, max_inflight: int = 1000) -> None:
    """Hand every frame of a connection to `handle(raw, received_at)` as its own task, so
    many messages share one group commit; when the connection ends, give the answers
    still being committed `drain_seconds` to go out, then abandon them (unconfirmed: the
    platform delivers them again)."""
    inflight: set[asyncio.Task[None]] = set()
    room = asyncio.Semaphore(max_inflight)

    def done(task: asyncio.Task[None]) -> None:
        inflight.discard(task)
        room.release()

    try:
        async for data in ws:
            received_at = utcnow()
            raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            # a full house stops reading: TCP pushes back on the service, memory stays flat
            await room.acquire()
            task = asyncio.create_task(handle(raw, received_at))
            inflight.add(task)
            task.add_done_callback(done)
    finally:
        if inflight:
            _, pending = await asyncio.wait(inflight, timeout=drain_seconds)
            for task in pending:
                task.cancel()


async def send_answer(ws: Any, reply: Reply | None, *, text: bool, link: Link) -> None:
    """Send the reply's frame, if it has one; a closed socket just means no answer."""
    if reply is None or not reply.body:
        return
    try:
        await ws.send(reply.body.decode("utf-8") if text else reply.body)
    except websockets.ConnectionClosed:
        log.info("%s: connection closed before the answer went out", link.name)


def peer(ws: Any) -> str | None:
    address = getattr(ws, "remote_address", None)
    return f"{address[0]}:{address[1]}" if address else None


class ChannelConnector:
    """Base of connectors whose messages arrive only on a channel the hub opens: an HTTP
    push to /webhooks/<platform>/... is refused with a reason (whatever its content
    type), and a channel message is answered with the platform's own confirm/fail frame
    (`answer`)."""

    name: ClassVar[str]
    channel_name: ClassVar[str]  # how the platform calls its channel, for the refusal
    content_types: ClassVar[tuple[str, ...]] = (
        "application/json",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "application/xml",
        "text/xml",
        "text/plain",
        "",
    )

    def verify(self, msg: Inbound) -> None:
        if msg.method != METHOD:
            raise Rejection(
                "channel_only",
                f"{self.name} delivers order messages over {self.channel_name}, a WebSocket "
                "the hub opens (set the shop's message_url); nothing is accepted over HTTP",
                status=404,
            )
        # A channel message carries no signature of its own: the connection was opened
        # with the app's signed connect, and the service authenticated it.

    def ack(self, msg: Inbound) -> Reply:
        return self.answer(msg, None)

    def reject(self, msg: Inbound | None, rejection: Rejection) -> Reply:
        if msg is None or msg.method != METHOD:
            return json_reply(
                rejection.status,
                {"error": {"reason": rejection.reason, "detail": rejection.detail}},
            )
        return self.answer(msg, rejection)

    def answer(self, msg: Inbound, rejection: Rejection | None) -> Reply:
        raise NotImplementedError
