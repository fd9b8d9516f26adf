"""A faithful local fake of Taobao's TMC message service (top-link v2 over WebSocket).

    async with FakeTmc(app_key="12345678", secret="s3cret") as tmc:
        mid = tmc.publish("taobao_trade_TradeBuyerPay", {"tid": 4109876543210987654, ...},
                          user_id=2200123456, nick="acme旗舰店")
        ...  # point a shop's message_url at tmc.url
        await tmc.mailbox.wait_confirmed([mid])

What it checks and does, as the SDK's server half and the TMC docs describe:
- the first frame must be CONNECT with `app_key`, `group_name`, `timestamp`, `sign`; a
  wrong app key or signature is refused with a CONNECTACK carrying a status phrase (the
  SDK's `EndpointChannelHandler.handleConnect` refusal), then the socket is closed;
- accepted: CONNECTACK with a session token (and the CONNECT's flag echoed);
- messages go out as SEND frames (`id` i64, `topic`, `content` text or gzip bytes, `time`,
  `userid`, `nick`, `dataid`) carrying the token; Confirm (`__kind` 2) removes one,
  Failed (`__kind` 20) or silence brings it back after `redeliver_seconds`, and a dead
  connection's unconfirmed messages go out again on the next one;
- PullRequest (`__kind` 1) sends whatever is due.
Misbehaviour on request: `drop()`, `misbehave.drop_after`, `misbehave.garbage_every`,
`misbehave.silent` (stops reading, so pings go unanswered).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip as gzip_module
import json
import os
import uuid
from datetime import datetime
from typing import Any

import click
import websockets
from websockets.asyncio.server import Server, ServerConnection, serve

from connectors.taobao import tmc
from connectors.taobao.frames import Frame, FrameError, MessageType, decode, encode, int64
from hub.model import utcnow
from sandbox.fakes._mailbox import FakeServer, Queued, serve_from_cli, serve_options

GARBAGE = b"\x07\x99not a top-link frame"


class FakeTmc(FakeServer):
    def __init__(
        self,
        app_key: str,
        secret: str,
        *,
        group_name: str = tmc.DEFAULT_GROUP,
        host: str = "127.0.0.1",
        port: int = 0,
        redeliver_seconds: float = 2.0,
        tick_seconds: float = 0.1,
    ) -> None:
        super().__init__(host=host, port=port, redeliver_seconds=redeliver_seconds)
        self.app_key = app_key
        self.secret = secret
        self.group_name = group_name
        self.tick_seconds = tick_seconds
        self.pulls = 0
        # set to demand the CONNECT carry this `token` (what taobao.tmc.auth.get returned)
        self.auth_token: str | None = None
        self._next_id = 9_007_199_254_740_993  # 2**53 + 1: ids beyond a double's reach

    async def _serve(self) -> Server:
        return await serve(self._handler, self.host, self.port, ping_interval=None)

    def publish(
        self,
        topic: str,
        content: dict[str, Any] | str,
        *,
        user_id: int,
        nick: str,
        gzip: bool = False,
        published_at: datetime | None = None,
        message_id: int | None = None,
    ) -> int:
        """Queue one message; returns its id."""
        if message_id is None:
            message_id = self._next_id
            self._next_id += 1
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        headers: dict[str, Any] = {
            "id": int64(message_id),
            "topic": topic,
            "content": gzip_module.compress(text.encode()) if gzip else text,
            "time": published_at or utcnow(),
            "userid": int64(user_id),
            "nick": nick,
        }
        if isinstance(content, dict) and isinstance(content.get("tid"), int):
            headers["dataid"] = int64(content["tid"])
        self.mailbox.add(Queued(message_id, headers))
        return message_id

    # --- the connection -----------------------------------------------------------------

    async def _handler(self, conn: ServerConnection) -> None:
        try:
            async with asyncio.timeout(10):
                first = await conn.recv()
        except (TimeoutError, websockets.ConnectionClosed):
            return
        why = self._check_connect(first)
        flag = _flag(first)
        if why is not None:
            self.connects.append((False, why))
            await conn.send(encode(Frame(MessageType.CONNECTACK, status_phrase=why, flag=flag)))
            await conn.close()
            return
        token = uuid.uuid4().hex
        await conn.send(encode(Frame(MessageType.CONNECTACK, token=token, flag=flag)))
        self.accepted(conn)
        if self.misbehave.silent:
            conn.transport.pause_reading()  # frames and pings pile up unread
        pusher = asyncio.create_task(self._push(conn, token))
        try:
            async for data in conn:
                if isinstance(data, bytes):
                    await self._on_frame(conn, token, data)
        except websockets.ConnectionClosed:
            pass
        finally:
            pusher.cancel()
            self.closed(conn)

    def _check_connect(self, data: Any) -> str | None:
        if not isinstance(data, bytes):
            return "expected a binary CONNECT frame"
        try:
            frame = decode(data)
        except FrameError as exc:
            return f"bad frame: {exc}"
        if frame.type != MessageType.CONNECT:
            return f"expected CONNECT, got {frame.type.name}"
        h = frame.headers
        if h.get("app_key") != self.app_key:
            return f"app_key {h.get('app_key')!r} not found"
        group = h.get("group_name") or tmc.DEFAULT_GROUP
        if group != self.group_name:
            return f"group {group!r} not found"
        expected = tmc.sign(self.secret, self.app_key, group, str(h.get("timestamp")))
        if h.get("sign") != expected:
            return "invalid sign"
        if self.auth_token is not None and h.get("token") != self.auth_token:
            return "invalid token"
        return None

    async def _on_frame(self, conn: ServerConnection, token: str, data: bytes) -> None:
        try:
            frame = decode(data)
        except FrameError:
            return
        kind = frame.headers.get("__kind")
        message_id = frame.headers.get("id")
        if kind == tmc.PULL_REQUEST:
            self.pulls += 1
            await self._send_due(conn, token)
        elif kind == tmc.CONFIRM and isinstance(message_id, int):
            self.mailbox.confirm(message_id)
        elif kind == tmc.FAILED and isinstance(message_id, int):
            self.mailbox.fail(message_id, str(frame.headers.get("msg") or ""))

    async def _push(self, conn: ServerConnection, token: str) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await self._send_due(conn, token)
                await self.mailbox.nap(self.tick_seconds)

    async def _send_due(self, conn: ServerConnection, token: str) -> None:
        for item in self.mailbox.due(conn):
            if not self.may_send(conn):
                self.cut(conn)
                return
            if not self.mailbox.claim(item, conn):
                continue
            if self.garbage_now():
                await conn.send(GARBAGE)
            await conn.send(encode(Frame(MessageType.SEND, dict(item.body), token=token)))
            self.count_sent(conn)


def _flag(data: Any) -> int:
    with contextlib.suppress(FrameError, TypeError):
        return decode(data).flag
    return 0


# --- the CLI: `orderhook simulate taobao` ------------------------------------------------

DEMO_TOPICS = (
    ("taobao_trade_TradeCreate", "WAIT_BUYER_PAY"),
    ("taobao_trade_TradeBuyerPay", "WAIT_SELLER_SEND_GOODS"),
)


@click.command("taobao")
@click.option("--app-key", default="12345678", show_default=True, help="The TMC app key.")
@click.option(
    "--secret",
    default="tmc-demo-secret",
    show_default=True,
    envvar="ORDERHOOK_TMC_SECRET",
    help="The app secret the CONNECT signature must use.",
)
@click.option("--seller-id", default=2200123456, show_default=True, help="TMC userid.")
@click.option("--seller-nick", default="demo-shop", show_default=True, help="TMC nick.")
@click.option("--gzip", "use_gzip", is_flag=True, help="Send content gzip-compressed.")
@serve_options(9610, "Never answer pings (the hub should reconnect).")
def command(
    app_key: str, secret: str, seller_id: int, seller_nick: str, use_gzip: bool, **common: Any
) -> None:
    """Serve a fake Taobao TMC message service for a hub to connect to.

    \b
    Examples:
      orderhook simulate taobao                       # ws://127.0.0.1:9610, 5 demo orders
      orderhook simulate taobao --orders 1000 --rate 50
      orderhook simulate taobao --drop-after 3 --garbage-every 7   # rehearse failures
      orderhook simulate taobao --silent              # pings unanswered: hub must reconnect
    """
    fake = FakeTmc(
        app_key,
        secret,
        host=common["host"],
        port=common["port"],
        redeliver_seconds=common["redeliver_seconds"],
    )
    base = int.from_bytes(os.urandom(4), "big") * 1000

    def publish(n: int) -> None:
        topic, status = DEMO_TOPICS[n % len(DEMO_TOPICS)]
        tid = base + n // len(DEMO_TOPICS)
        content = {"tid": tid, "oid": tid, "status": status, "payment": "99.00"}
        fake.publish(topic, content, user_id=seller_id, nick=seller_nick, gzip=use_gzip)

    banner = (
        f"fake TMC listening on {{url}}/  (app_key {app_key})\n"
        f'shop config:\n  [shops.demo-taobao]\n  platform = "taobao"\n'
        f'  app_key = "{app_key}"\n  secret = "{secret}"\n'
        f'  message_url = "{{url}}/"\n  options = {{{{ seller_id = {seller_id} }}}}'
    )
    serve_from_cli(
        fake, common, banner=banner, publish=publish, messages=common["orders"] * len(DEMO_TOPICS)
    )
