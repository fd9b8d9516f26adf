"""A faithful local fake of Pinduoduo's message service (JSON frames over WebSocket).

    async with FakePmc(client_id="app", secret="secret") as pmc:
        mid = pmc.publish("pdd_trade_TradeConfirmed", {"mall_id": 171504183,
                          "tid": "231125-123456789012345"}, mall_id=171504183)
        ...  # point a shop's message_url at pmc.url
        await pmc.mailbox.wait_confirmed([mid])

What it checks and does, as the Java SDK's client expects the service to behave:
- the WebSocket path is `/message/{client_id}/{timestamp_ms}/{sign}`; a wrong client id
  or sign refuses the handshake with HTTP 401 and a JSON error body (how the real
  service refuses is not documented anywhere we read: see docs/connectors/pinduoduo.md);
- messages go out as `Common` frames (`id`, `time`, `sendTime`, `message` {`type`,
  `mallID`, `content` as a JSON string}); an `Ack` with the id removes one, a `Fail` or
  silence brings it back after `redeliver_seconds` (same id), and a dead connection's
  un-acked messages go out again on the next one;
- `HeartBeat` frames every `heartbeat_seconds`.
Misbehaviour on request: `drop()`, `misbehave.drop_after`, `misbehave.garbage_every`,
`misbehave.silent` (heartbeats stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import time
from http import HTTPStatus
from typing import Any

import click
import websockets
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from connectors.pinduoduo import channel as pmc
from sandbox.fakes._mailbox import FakeServer, Queued, serve_from_cli, serve_options

GARBAGE = "{not json"


class FakePmc(FakeServer):
    def __init__(
        self,
        client_id: str,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        redeliver_seconds: float = 2.0,
        heartbeat_seconds: float = 5.0,
        tick_seconds: float = 0.1,
    ) -> None:
        super().__init__(host=host, port=port, redeliver_seconds=redeliver_seconds)
        self.client_id = client_id
        self.secret = secret
        self.heartbeat_seconds = heartbeat_seconds
        self.tick_seconds = tick_seconds
        self.heartbeats_received = 0
        self._next_id = 9_007_199_254_740_993  # 2**53 + 1: ids beyond a double's reach

    async def _serve(self) -> Server:
        return await serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._check_path,
            ping_interval=None,
        )

    def publish(
        self,
        message_type: str,
        content: dict[str, Any] | str,
        *,
        mall_id: int,
        published_ms: int | None = None,
        message_id: int | None = None,
    ) -> int:
        if message_id is None:
            message_id = self._next_id
            self._next_id += 1
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        now = int(time.time() * 1000) if published_ms is None else published_ms
        body = {"type": message_type, "mallID": mall_id, "content": text, "time": now}
        self.mailbox.add(Queued(message_id, body))
        return message_id

    # --- the connection -----------------------------------------------------------------

    def _check_path(self, conn: ServerConnection, request: Request) -> Response | None:
        why = self._refusal(request.path)
        if why is None:
            return None
        self.connects.append((False, why))
        response = conn.respond(
            HTTPStatus.UNAUTHORIZED, json.dumps({"error_code": 401, "error_msg": why})
        )
        del response.headers["Content-Type"]  # websockets' Headers append on assignment
        response.headers["Content-Type"] = "application/json"
        return response

    def _refusal(self, path: str) -> str | None:
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 4 or parts[0] != "message":
            return "path must be /message/{client_id}/{timestamp}/{sign}"
        _, client_id, timestamp, signature = parts
        if client_id != self.client_id:
            return f"client_id {client_id!r} not found"
        if not timestamp.isdigit():
            return "timestamp must be epoch milliseconds"
        expected = pmc.sign(client_id, timestamp, self.secret)
        if not hmac.compare_digest(signature, expected):
            return "invalid sign"
        return None

    async def _handler(self, conn: ServerConnection) -> None:
        self.accepted(conn)
        tasks = [
            asyncio.create_task(self._push(conn)),
            asyncio.create_task(self._heartbeats(conn)),
        ]
        try:
            async for data in conn:
                self._on_frame(data)
        except websockets.ConnectionClosed:
            pass
        finally:
            for task in tasks:
                task.cancel()
            self.closed(conn)

    def _on_frame(self, data: str | bytes) -> None:
        try:
            frame = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(frame, dict):
            return
        command, message_id = frame.get("commandType"), frame.get("id")
        if command == "HeartBeat":
            self.heartbeats_received += 1
        elif command == "Ack" and isinstance(message_id, int):
            self.mailbox.confirm(message_id)
        elif command == "Fail" and isinstance(message_id, int):
            self.mailbox.fail(message_id, str(frame.get("failReason") or ""))

    async def _heartbeats(self, conn: ServerConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                if not self.misbehave.silent:
                    now = int(time.time() * 1000)
                    await conn.send(
                        json.dumps(
                            {"id": now, "commandType": "HeartBeat", "time": now, "sendTime": now}
                        )
                    )
                await asyncio.sleep(self.heartbeat_seconds)

    async def _push(self, conn: ServerConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                for item in self.mailbox.due(conn):
                    if not self.may_send(conn):
                        self.cut(conn)
                        return
                    if not self.mailbox.claim(item, conn):
                        continue
                    if self.garbage_now():
                        await conn.send(GARBAGE)
                    body = item.body
                    frame = {
                        "id": item.id,
                        "commandType": "Common",
                        "time": body["time"],
                        "sendTime": int(time.time() * 1000),
                        "message": {
                            "type": body["type"],
                            "mallID": body["mallID"],
                            "content": body["content"],
                        },
                    }
                    await conn.send(json.dumps(frame, ensure_ascii=False))
                    self.count_sent(conn)
                await self.mailbox.nap(self.tick_seconds)


# --- the CLI: `orderhook simulate pinduoduo` ---------------------------------------------


@click.command("pinduoduo")
@click.option("--client-id", default="demo-client", show_default=True, help="The app's client_id.")
@click.option(
    "--secret",
    default="pdd-demo-secret",
    show_default=True,
    envvar="ORDERHOOK_PDD_SECRET",
    help="The client_secret the connect sign must use.",
)
@click.option("--mall-id", default=171504183, show_default=True, help="mallID of the shop.")
@click.option("--heartbeat-seconds", default=5.0, show_default=True, help="Heartbeat period.")
@serve_options(9620, "Send no heartbeats (the hub should reconnect).")
def command(
    client_id: str, secret: str, mall_id: int, heartbeat_seconds: float, **common: Any
) -> None:
    """Serve a fake Pinduoduo message service for a hub to connect to.

    \b
    Examples:
      orderhook simulate pinduoduo                    # ws://127.0.0.1:9620, 5 demo orders
      orderhook simulate pinduoduo --orders 1000 --rate 50
      orderhook simulate pinduoduo --drop-after 3 --garbage-every 7   # rehearse failures
      orderhook simulate pinduoduo --silent           # no heartbeats: hub must reconnect
    """
    fake = FakePmc(
        client_id,
        secret,
        host=common["host"],
        port=common["port"],
        redeliver_seconds=common["redeliver_seconds"],
        heartbeat_seconds=heartbeat_seconds,
    )
    base = int.from_bytes(os.urandom(3), "big")

    def publish(n: int) -> None:
        tid = f"231125-{base:06d}{n:09d}"
        fake.publish("pdd_trade_TradeConfirmed", {"mall_id": mall_id, "tid": tid}, mall_id=mall_id)

    banner = (
        f"fake Pinduoduo message service on {{url}}  (client_id {client_id})\n"
        f'shop config:\n  [shops.demo-pdd]\n  platform = "pinduoduo"\n'
        f'  app_key = "{client_id}"\n  secret = "{secret}"\n'
        f'  message_url = "{{url}}"\n  options = {{{{ mall_id = {mall_id} }}}}'
    )
    serve_from_cli(fake, common, banner=banner, publish=publish, messages=common["orders"])
