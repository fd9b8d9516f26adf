"""What both channel fakes share: the platform's queue of unconfirmed messages, a
WebSocket server on 127.0.0.1, and the misbehaviours tests and rehearsals ask for.

Delivery semantics the fakes reproduce (docs/connectors/taobao.md, pinduoduo.md): a
message stays queued until the client confirms it; one the client fails, or does not
confirm within `redeliver_seconds`, or that was in flight on a connection that died, is
delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import click
from websockets.asyncio.server import Server, ServerConnection


@dataclass(slots=True)
class Queued:
    id: int
    body: Any  # what the platform module needs to build the frame
    not_before: float = 0.0


@dataclass
class Mailbox:
    redeliver_seconds: float = 2.0
    queued: dict[int, Queued] = field(default_factory=dict)
    inflight: dict[int, tuple[ServerConnection, float]] = field(default_factory=dict)
    sent: Counter[int] = field(default_factory=Counter)
    confirmed: Counter[int] = field(default_factory=Counter)
    failed: list[tuple[int, str]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, item: Queued) -> None:
        self.queued[item.id] = item
        self.changed.set()

    def due(self, conn: ServerConnection) -> list[Queued]:
        """What may go out now; `claim` each one right before sending it."""
        now = time.monotonic()
        return [item for item in self.queued.values() if self._is_due(item, now)]

    def _is_due(self, item: Queued, now: float) -> bool:
        if self.queued.get(item.id) is not item or now < item.not_before:
            return False  # confirmed (or replaced) meanwhile, or failed and resting
        holder = self.inflight.get(item.id)
        # in flight on this or another connection, and not overdue for redelivery
        return holder is None or now - holder[1] >= self.redeliver_seconds

    def claim(self, item: Queued, conn: ServerConnection) -> bool:
        """Mark `item` in flight on `conn` before its frame is written, or say it is no
        longer due. Marking after the write let a second sender of the same connection
        (the push loop and a PullRequest) send it twice, and a message confirmed while
        earlier frames were written went out again: duplicates no platform sent."""
        if not self._is_due(item, time.monotonic()):
            return False
        self.inflight[item.id] = (conn, time.monotonic())
        self.sent[item.id] += 1
        return True

    def confirm(self, message_id: int) -> None:
        self.confirmed[message_id] += 1
        self.queued.pop(message_id, None)
        self.inflight.pop(message_id, None)
        self.changed.set()

    def fail(self, message_id: int, reason: str) -> None:
        self.failed.append((message_id, reason))
        self.inflight.pop(message_id, None)
        item = self.queued.get(message_id)
        if item is not None:
            item.not_before = time.monotonic() + self.redeliver_seconds
        self.changed.set()

    def holds(self, conn: ServerConnection) -> bool:
        """Has `conn` messages out that it has not answered yet?"""
        return any(holder is conn for holder, _ in self.inflight.values())

    def forget(self, conn: ServerConnection) -> None:
        """The connection died: whatever it held unconfirmed is due again at once."""
        for message_id, (holder, _) in list(self.inflight.items()):
            if holder is conn:
                del self.inflight[message_id]
        self.changed.set()

    async def nap(self, seconds: float) -> None:
        """Sleep until something changes (a publish, a confirm) or `seconds` pass."""
        self.changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.changed.wait()

    async def wait_confirmed(self, ids: Iterable[int], timeout: float = 10.0) -> None:
        wanted = set(ids)
        async with asyncio.timeout(timeout):
            while not wanted <= set(self.confirmed):
                self.changed.clear()
                await self.changed.wait()

    async def wait_failed(self, count: int = 1, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.failed) < count:
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Misbehaviour:
    """What the fake does wrong on request (tests, `--drop-after`, `--garbage-every`)."""

    drop_after: int | None = None  # abort the connection after sending this many messages
    garbage_every: int | None = None  # send an undecodable frame before every Nth message
    silent: bool = False  # stop heartbeats (Pinduoduo) / stop answering pings (Taobao)


class FakeServer:
    """The WebSocket server half: start/stop on 127.0.0.1, connection bookkeeping."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, redeliver_seconds: float = 2.0):
        self.host = host
        self.port = port
        self.mailbox = Mailbox(redeliver_seconds)
        self.misbehave = Misbehaviour()
        self.connections: set[ServerConnection] = set()
        self.connects: list[tuple[bool, str]] = []  # (accepted, why) per connect attempt
        self.connected = asyncio.Event()
        self._server: Server | None = None
        self._sent_on: Counter[int] = Counter()  # messages sent per connection id
        self._total_sent = 0
        self._cuts: dict[int, asyncio.Task[None]] = {}  # connection id -> its pending cut

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await self._serve()
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]

    async def _serve(self) -> Server:
        raise NotImplementedError

    async def stop(self) -> None:
        for task in self._cuts.values():
            task.cancel()
        if self._server is not None:
            self.drop()  # no close handshakes with connections told to go silent
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def drop(self) -> None:
        """Cut every connection as a network failure would: no close frame."""
        for conn in list(self.connections):
            conn.transport.abort()

    async def wait_connects(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.connects) < count:
                await asyncio.sleep(0.01)

    def accepted(self, conn: ServerConnection) -> None:
        self.connections.add(conn)
        self.connects.append((True, "accepted"))
        self.connected.set()

    def closed(self, conn: ServerConnection) -> None:
        self.connections.discard(conn)
        self.mailbox.forget(conn)
        self._sent_on.pop(id(conn), None)
        self._cuts.pop(id(conn), None)

    def may_send(self, conn: ServerConnection) -> bool:
        """False once this connection has had its `drop_after` messages: the caller then
        calls `cut` and sends nothing more on it."""
        limit = self.misbehave.drop_after
        return limit is None or self._sent_on[id(conn)] < limit

    def cut(self, conn: ServerConnection) -> None:
        """Abort `conn` (no close frame) once the hub has answered what it holds, or
        after `redeliver_seconds`. Cutting a fixed tick after the last send made progress
        depend on speed: a hub that took longer than the tick to commit never had an
        answer arrive, and the same message went out on every new connection forever.
        Runs as its own task: the answer is read by the loop that may be calling this."""
        if id(conn) in self._cuts:
            return

        async def when_answered() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.mailbox.redeliver_seconds):
                    while self.mailbox.holds(conn):
                        await self.mailbox.nap(1.0)
            conn.transport.abort()

        self._cuts[id(conn)] = asyncio.create_task(when_answered())

    def count_sent(self, conn: ServerConnection) -> None:
        self._sent_on[id(conn)] += 1
        self._total_sent += 1

    def garbage_now(self) -> bool:
        every = self.misbehave.garbage_every
        return bool(every) and (self._total_sent + 1) % every == 0  # type: ignore[operator]


def serve_options(default_port: int, silent_help: str) -> Callable[[Any], Any]:
    """The options every fake's command shares: where to listen, the demo traffic, and
    the misbehaviours to rehearse."""
    options = [
        click.option(
            "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
        ),
        click.option("--port", default=default_port, show_default=True, help="Port (0: any free)."),
        click.option("--orders", default=5, show_default=True, help="Demo orders to publish."),
        click.option("--rate", default=2.0, show_default=True, help="Demo messages per second."),
        click.option(
            "--redeliver-seconds", default=5.0, show_default=True, help="Resend unconfirmed after."
        ),
        click.option("--drop-after", type=int, help="Cut each connection after N messages."),
        click.option(
            "--garbage-every", type=int, help="Send an undecodable frame before every Nth message."
        ),
        click.option("--silent", is_flag=True, help=silent_help),
        click.option("--duration", default=0.0, help="Stop after this many seconds (0: Ctrl-C)."),
    ]

    def decorate(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def serve_from_cli(
    fake: FakeServer,
    common: dict[str, Any],
    *,
    banner: str,
    publish: Callable[[int], None],
    messages: int,
) -> None:
    """Run a fake until Ctrl-C (or `--duration`): print the banner (with `{url}` filled
    in), publish `messages` demo messages at `--rate` through `publish(n)`, and keep one
    progress line up to date. `common` holds the `serve_options` values."""
    fake.misbehave = Misbehaviour(common["drop_after"], common["garbage_every"], common["silent"])
    rate, duration = float(common["rate"]), float(common["duration"])

    async def main() -> None:
        async with fake:
            click.echo(banner.format(url=fake.url))
            loop = asyncio.get_running_loop()
            stop_at = loop.time() + duration if duration else None
            published = 0
            while stop_at is None or loop.time() < stop_at:
                if published < messages:
                    publish(published)
                    published += 1
                await asyncio.sleep(1 / rate if rate > 0 else 1)
                box = fake.mailbox
                click.echo(
                    f"\rpublished {published}  confirmed {len(box.confirmed)}  "
                    f"failed {len(box.failed)}  connects {len(fake.connects)}",
                    nl=False,
                )
            click.echo()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
