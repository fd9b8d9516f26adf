"""The stage runner: a process of its own for the heavy post-commit writes.

The dispatch stage (apply events to orders, route, assign) is Python through and through;
run on the hub's writer thread it holds the GIL against the event loop that answers the
platforms, and under a burst both slow down. Here it runs on the other core:

    await store.offload(engine.process, Shared(config), 100)

runs `engine.process(conn, config, 100)` in one transaction of the runner and returns
its result. The function travels by reference and the arguments and result by pickle,
so both must be picklable; an argument wrapped in `Shared` is sent once and then named
by reference for as long as the caller keeps passing the same object (the rules of a
large config are not re-sent with every batch). The runner takes its write turn like the
writer thread does (`Turn.thread`). An exception in the function comes back as
`OffloadError` with its type and message; the transaction is rolled back.
"""

from __future__ import annotations

import asyncio
import io
import logging
import pickle
import socket
import sqlite3
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.store.child import (
    READY,
    Child,
    FrameReader,
    StoreUnavailable,
    send_blocking,
    warm,
    worker_setup,
)
from hub.store.connection import connect, transaction
from hub.store.turn import Turn

log = logging.getLogger("orderhook.store")

REMEMBERED = 8  # shared objects the runner keeps; the event loop's side names fewer


class OffloadError(RuntimeError):
    """The offloaded function raised (in the runner): its type and message."""


@dataclass(frozen=True, eq=False)
class Shared:
    """An argument sent once and then referred to, while it is the same object."""

    value: Any


# --- the runner process -------------------------------------------------------------------


def main() -> None:
    """The runner (argv: FD DB [MODULE[:FUNCTION]...]), started by `StageRunner`."""
    fd, db, *preload = sys.argv[1:]
    worker_setup()
    warm(preload)
    turn = Turn(db)
    try:
        serve(db, socket.socket(fileno=int(fd)), turn)
    finally:
        turn.close()


def serve(path: str, sock: socket.socket, turn: Turn) -> None:
    # not flushed at each commit: the stages' work is derived from committed events and
    # redone from their cursors, and the next ingest commit flushes it anyway; an fsync
    # here would hold the write turn another millisecond or more per batch
    conn = connect(path, durable=False)
    remembered: OrderedDict[int, Any] = OrderedDict()
    send_blocking(sock, READY)
    reader = FrameReader()
    try:
        while chunk := _recv(sock):
            for data in reader.feed(chunk):
                seq, fn, args = pickle.loads(data)
                send_blocking(sock, _run(conn, turn, remembered, seq, fn, args))
    finally:
        conn.close()
        sock.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 20)
    except ConnectionResetError:  # the hub went away without reading our last answer
        return b""


def _run(
    conn: sqlite3.Connection,
    turn: Turn,
    remembered: OrderedDict[int, Any],
    seq: int,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
) -> bytes:
    try:
        values = [_resolve(remembered, arg) for arg in args]
        with turn.thread(), transaction(conn):
            result = fn(conn, *values)
        return pickle.dumps((seq, True, result), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        log.exception("offloaded %s failed", getattr(fn, "__qualname__", fn))
        return pickle.dumps((seq, False, f"{type(exc).__name__}: {exc}"[:1000]))


def _resolve(remembered: OrderedDict[int, Any], arg: Any) -> Any:
    if isinstance(arg, _Sent):
        remembered[arg.key] = arg.value
        while len(remembered) > REMEMBERED:
            remembered.popitem(last=False)
        return arg.value
    if isinstance(arg, _Ref):
        remembered.move_to_end(arg.key)
        return remembered[arg.key]
    return arg


@dataclass(frozen=True)
class _Sent:
    key: int
    value: Any


@dataclass(frozen=True)
class _Ref:
    key: int


# --- the event loop's side --------------------------------------------------------------


class StageRunner(Child):
    name = "stage runner"
    entry = f"{__name__}:main"

    def __init__(
        self, path: Path, loop: asyncio.AbstractEventLoop, preload: tuple[str, ...] = ()
    ) -> None:
        super().__init__(loop, [str(path), *preload])
        self._seq = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        # id(obj) -> (key, obj): the obj is held so that its id cannot be reused
        self._shared: OrderedDict[int, tuple[int, Any]] = OrderedDict()
        self._keys = 0

    def started(self) -> None:
        self._shared.clear()  # a new runner remembers nothing

    def call(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        self._seq += 1
        future: asyncio.Future[Any] = self.loop.create_future()
        buffer = io.BytesIO()
        pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL).dump(
            (self._seq, fn, tuple(self._encode(arg) for arg in args))
        )
        if not self.send(buffer.getvalue()):
            future.set_exception(StoreUnavailable("the stage runner is not running"))
            return future
        self._pending[self._seq] = future
        return future

    def _encode(self, arg: Any) -> Any:
        if not isinstance(arg, Shared):
            return arg
        held = self._shared.get(id(arg.value))
        if held is not None and held[1] is arg.value:
            self._shared.move_to_end(id(arg.value))
            return _Ref(held[0])
        self._keys += 1
        self._shared[id(arg.value)] = (self._keys, arg.value)
        while len(self._shared) > REMEMBERED // 2:  # the runner keeps more than we name
            self._shared.popitem(last=False)
        return _Sent(self._keys, arg.value)

    def received(self, data: bytes) -> None:
        seq, ok, value = pickle.loads(data)
        future = self._pending.pop(seq, None)
        if future is None or future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(OffloadError(value))

    def abandon(self, reason: str) -> int:
        waiting = list(self._pending.values())
        self._pending.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(StoreUnavailable(reason))
        return len(waiting)
