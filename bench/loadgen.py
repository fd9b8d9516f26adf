"""Load generators in Python, on uvloop with raw sockets (no HTTP library per request):

- `closed_loop`: N keep-alive connections sending back to back, like wrk; the fallback
  when wrk is not installed. It reports its own CPU time: if that approaches one core it
  is the bottleneck and the run says so.
- `open_loop`: a fixed rate, each push sent at its scheduled time whatever the server
  is doing; latency is measured from the *scheduled* time, so a stalled server shows up
  as latency instead of quietly lowering the rate (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import uvloop

from bench.wrk import LoadResult

T = TypeVar("T")
TIMEOUT = 30.0


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        at = head.find(b"content-length:")
        line_end = head.find(b"\r\n", at)
        length = int(head[at + 15 : line_end if line_end > 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        self.buffer = self.buffer[end + 4 + length :]
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("server closed the connection"))

    def send(self, raw: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter


class _Pool:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: list[_Connection] = []
        self.opened = 0

    async def acquire(self) -> _Connection:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
        self.opened += 1
        _, conn = await asyncio.get_running_loop().create_connection(
            _Connection, self.host, self.port
        )
        return conn

    def release(self, conn: _Connection) -> None:
        if not conn.closed:
            self.idle.append(conn)

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()


def run_on_uvloop(make: Callable[[], Awaitable[T]]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(make())  # type: ignore[arg-type]


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p99": at(0.99), "max": ordered[-1]}


async def closed_loop(
    url: str, requests: Sequence[bytes], *, seconds: float, connections: int
) -> LoadResult:
    pool = _Pool(url)
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    position = 0
    wrapped = False

    async def worker(deadline: float) -> None:
        nonlocal position, wrapped
        conn = await pool.acquire()
        while time.monotonic() < deadline:
            if position >= len(requests):
                position, wrapped = 0, True
            raw = requests[position]
            position += 1
            started = time.perf_counter()
            try:
                status = await asyncio.wait_for(conn.send(raw), TIMEOUT)
            except (ConnectionError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                conn = await pool.acquire()
                continue
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
        pool.release(conn)

    cpu0, t0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(worker(t0 + seconds) for _ in range(connections)))
    elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    pool.close()
    return LoadResult(
        generator="python",
        seconds=elapsed,
        responses=sum(statuses.values()),
        statuses=dict(statuses),
        errors=dict(errors),
        latency_ms={k: v * 1000 for k, v in percentiles(latencies).items()},
        wrapped=wrapped,
        generator_cpu=cpu,
    )


@dataclass(slots=True)
class Outcome:
    """One push of an open-loop run: when it was due, when its answer came, what it was."""

    scheduled: float  # time.time() at which it was due
    latency: float | None = None  # seconds from scheduled to the full response
    lag: float = 0.0  # how late the generator actually sent it (its own slack)
    status: int | None = None
    error: str | None = None


async def open_loop(
    url: str, requests: Sequence[bytes], *, rate: float, max_connections: int = 512
) -> list[Outcome]:
    """Send `requests` at `rate` per second; one Outcome per request, in order.

    At most `max_connections` are open; a push due while all are busy waits for one,
    and that wait counts in its latency (it is measured from the scheduled time)."""
    pool = _Pool(url)
    slots = asyncio.Semaphore(max_connections)
    start = time.perf_counter() + 0.05
    wall_offset = time.time() - time.perf_counter()
    outcomes = [Outcome(scheduled=start + i / rate + wall_offset) for i in range(len(requests))]

    async def one(i: int, due: float) -> None:
        outcome = outcomes[i]
        async with slots:
            try:
                conn = await pool.acquire()
                outcome.lag = time.perf_counter() - due
                status = await asyncio.wait_for(conn.send(requests[i]), TIMEOUT)
            except (OSError, TimeoutError) as exc:
                outcome.error = type(exc).__name__
                return
            outcome.latency = time.perf_counter() - due
            outcome.status = status
            pool.release(conn)

    tasks = []
    for i in range(len(requests)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    pool.close()
    return outcomes
