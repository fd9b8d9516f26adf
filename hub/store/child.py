"""The store's worker processes, as the event loop sees them: started, spoken to over a
socket pair in length-prefixed frames, replaced when they die.

Two use it: the ingest writer (`ingest_process`) and the stage runner (`stage_process`).
Each is a fresh interpreter, not a fork: forking the hub would copy its threads' locks
(SQLite's included) in whatever state they were. A worker announces itself with one
`ready` frame, works until the event loop closes its end of the socket, and ignores
Ctrl-C and SIGTERM sent to the whole process group, so the hub's graceful stop can
still use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("orderhook.store")

FRAME = struct.Struct(">I")
BUFFER = 4 << 20  # socket buffers: a burst's jobs queue in the kernel while a worker commits
READY = b"ready"


class StoreUnavailable(RuntimeError):
    """A worker could not do the job (disk failing, worker gone)."""


class FrameReader:
    """Length-prefixed frames out of a byte stream that arrives in arbitrary pieces."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    @property
    def partial(self) -> bool:
        return bool(self.buffer)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self.buffer
        buf += data
        frames: list[bytes] = []
        at = 0
        while len(buf) - at >= 4:
            (size,) = FRAME.unpack_from(buf, at)
            if len(buf) - at - 4 < size:
                break
            frames.append(bytes(buf[at + 4 : at + 4 + size]))
            at += 4 + size
        del buf[:at]
        return frames


def process_cpu_seconds(pid: int, *, waited_children: bool = False) -> float | None:
    """utime + stime of a process from /proc/<pid>/stat (read after the command's closing
    parenthesis, which may itself hold spaces), in seconds; with `waited_children` also
    cutime + cstime (its children that exited and were waited for). None if it cannot be
    read (not Linux, or the process is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        times = fields[11:15] if waited_children else fields[11:13]
        return sum(int(t) for t in times) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def frame(data: bytes) -> bytes:
    return FRAME.pack(len(data)) + data


def resolve(ref: str) -> Any:
    """The object named by "module:attribute" (a worker's entry, or what it calls)."""
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


def warm(items: list[str]) -> None:
    """Before a worker says `ready`, so that its first job is not slowed by imports and
    lazy set-ups (a connector registry, say): import each MODULE, call each
    MODULE:FUNCTION."""
    for item in items:
        if ":" in item:
            resolve(item)()
        else:
            importlib.import_module(item)


def worker_setup() -> None:
    """First thing in a worker's main."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")


class Child:
    """The event loop's end of one worker. Subclasses say what the worker runs
    (`entry`, `argv`), handle its frames (`received`) and fail what waits on it
    (`abandon`) when it dies; it is then started again."""

    name = "worker"
    entry = ""  # "module:function" called in the worker as function() with sys.argv

    def __init__(self, loop: asyncio.AbstractEventLoop, argv: list[str]) -> None:
        self.loop = loop
        self.argv = argv
        self.transport: asyncio.Transport | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self.stopping = False
        self._up = False  # answered `ready`: start it again if it dies
        self.restarts = 0  # replacements since the hub started

    @property
    def up(self) -> bool:
        return self._up and self.transport is not None

    def cpu_seconds(self) -> float | None:
        """User + system CPU the current worker process has used (a replaced one starts
        again from 0); None where /proc cannot tell (not Linux, or no process)."""
        if self.process is None:
            return None
        return process_cpu_seconds(self.process.pid)

    # --- subclass hooks -----------------------------------------------------------

    def received(self, data: bytes) -> None:
        raise NotImplementedError

    def abandon(self, reason: str) -> int:
        """Fail everything waiting on the worker; how many there were."""
        raise NotImplementedError

    def started(self) -> None:
        """The worker is up (first start or a replacement)."""

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        ours, theirs = socket.socketpair()
        for s in (ours, theirs):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        module, function = self.entry.split(":")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",  # not -m: its package imports the module first, and runpy warns
                f"from {module} import {function}; {function}()",
                str(theirs.fileno()),
                *self.argv,
            ],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._ready = self.loop.create_future()
        self._closed = self.loop.create_future()
        await self.loop.create_unix_connection(lambda: _Channel(self), sock=ours)
        try:
            async with asyncio.timeout(30):
                await asyncio.shield(self._ready)
        except TimeoutError:
            self.process.kill()
            raise StoreUnavailable(f"the {self.name} did not start within 30 s") from None
        error = self._ready.exception()
        if error is not None:
            raise error
        self._up = True
        self.started()

    async def stop(self) -> None:
        self.stopping = True
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()
        if self._closed is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await asyncio.shield(self._closed)
        if self.process is not None:
            try:
                await asyncio.to_thread(self.process.wait, 10)
            except subprocess.TimeoutExpired:
                log.error("%s did not exit; killing it", self.name)
                self.process.kill()
                await asyncio.to_thread(self.process.wait)

    def send(self, data: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(frame(data))
        return True

    # --- called by _Channel -------------------------------------------------------

    def _frame(self, data: bytes) -> None:
        if data == READY:
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            return
        self.received(data)

    def _lost(self, exc: Exception | None) -> None:
        self.transport = None
        waiting = self.abandon(f"the {self.name} exited")
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(StoreUnavailable(f"the {self.name} exited at start ({exc})"))
        if self._up and not self.stopping:
            self._up = False
            log.error("%s exited (%s); %d job(s) failed", self.name, exc, waiting)
            self.loop.create_task(self._restart())

    async def _restart(self) -> None:
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self.process.wait, 5)
        while not self.stopping:
            try:
                await self.start()
                self.restarts += 1
                log.warning("%s restarted", self.name)
                return
            except Exception:
                log.exception("restarting the %s failed; again in 1 s", self.name)
                await asyncio.sleep(1.0)


class _Channel(asyncio.Protocol):
    def __init__(self, child: Child) -> None:
        self.child = child
        self.reader = FrameReader()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.child.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        for data_frame in self.reader.feed(data):
            self.child._frame(data_frame)

    def eof_received(self) -> bool:
        return False  # close our end too

    def connection_lost(self, exc: Exception | None) -> None:
        self.child._lost(exc)


def send_blocking(sock: socket.socket, data: bytes) -> None:
    """The worker's side: one frame, however long the event loop takes to read (the
    receive timeout a worker may set for its idle work must not cut an answer short)."""
    timeout = sock.gettimeout()
    sock.settimeout(None)
    try:
        sock.sendall(frame(data))
    finally:
        sock.settimeout(timeout)
