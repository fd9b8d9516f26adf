"""The store: the hub's only door to its database.

    store = Store(path)
    store.migrate()                       # numbered migrations, recorded in the db
    await store.start()                   # the ingest writer process + the writer thread
    result = await store.receive(request, settings)  # judged + recorded by the writer
    result = await store.ingest(job)      # a job judged already (channels, reconciliation)
    value = await store.write(fn, *args)  # fn(conn, *args) in the writer's transaction
    value = await store.offload(fn, *args)  # the same in the stage runner process
    rows = await store.read(fn, *args)    # fn(conn, *args) on a reader thread
    value = store.run(fn, *args)          # synchronous, own connection (CLI, tests)
    rows = store.run_read(fn, *args)      # the same, read-only, without a write turn

All SQL lives in this package (`ingest_sql`, `queries`); handlers pass functions from
there and never build SQL. A PostgreSQL backend replaces this package behind the same
calls.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from connectors.base import Reply
from hub.store import ingest_sql
from hub.store.child import StoreUnavailable
from hub.store.connection import connect, transaction
from hub.store.ingest_process import IngestWriter
from hub.store.ingest_sql import IngestJob, IngestResult, RequestRecord
from hub.store.stage_process import OffloadError, Shared, StageRunner
from hub.store.turn import Turn
from hub.store.writer import Writer, WriterStats

__all__ = [
    "IngestJob",
    "IngestResult",
    "OffloadError",
    "RequestRecord",
    "Shared",
    "Store",
    "StoreUnavailable",
    "WriterStats",
]

T = TypeVar("T")

log = logging.getLogger("orderhook.store")


class Store:
    def __init__(
        self,
        path: Path | str,
        *,
        max_batch: int = 1024,
        preload: tuple[str, ...] = (),
        admit: str | None = None,
        stages: bool = False,
    ) -> None:
        self.path = Path(path)
        self.max_batch = max_batch
        self.preload = preload  # the workers' warm-up: MODULE or MODULE:FUNCTION
        self.admit = admit  # "module:function" that judges a received request (`receive`)
        self.stages = stages  # start the stage runner with the store, not on first use
        self._writer: Writer | None = None
        self._ingest: IngestWriter | None = None
        self._turn: Turn | None = None
        self._stages: StageRunner | None = None
        self._stages_starting: asyncio.Lock | None = None
        self._stats = WriterStats()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # reads in flight on reader threads: a task cancelled while awaiting `read` does
        # not stop its thread, and closing a connection under a running statement
        # crashes the interpreter (seen as a segfault at hub shutdown)
        self._reading = 0
        self._reads_done = threading.Condition(self._readers_lock)
        self.commit_listeners: list[Callable[[int], None]] = []
        self.batch_listeners: list[Callable[[int, float], None]] = []

    # --- lifecycle ------------------------------------------------------------------

    def migrate(self) -> None:
        # imported here: the ingest writer process imports this package and needs neither
        from sqlite_utils import Database

        from hub.store import schema

        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path)
        try:
            db = Database(conn)
            pending = [m.name for m in schema.migrations.pending(db)]
            # an upgrade may rebuild an index over millions of rows: seconds before the port
            # opens, which whoever watches the start should know about (a new file: quiet)
            upgrade = bool(pending) and bool(schema.migrations.applied(db))
            if upgrade:
                log.warning("migrating %s: %s", self.path, ", ".join(pending))
            started = time.monotonic()
            schema.apply(db)
            if upgrade:
                log.warning("migrated %s in %.1f s", self.path, time.monotonic() - started)
        finally:
            conn.close()

    async def start(self) -> None:
        self.migrate()
        loop = asyncio.get_running_loop()
        self._turn = turn = Turn(self.path)
        self._writer = Writer(self.path, loop, turn)
        self._writer.start()
        self._ingest = IngestWriter(
            self.path,
            loop,
            max_batch=self.max_batch,
            admit=self.admit,
            preload=self.preload,
            on_batch=self._on_batch,
            on_commit=self._on_commit,
            on_reply=self._on_reply,
        )
        # a store told it will offload starts its stage runner now, side by side with the
        # ingest writer, rather than make the first offloaded job wait
        stages = StageRunner(self.path, loop, self.preload) if self.stages else None
        try:
            await asyncio.gather(self._ingest.start(), *([stages.start()] if stages else []))
        except BaseException:
            if stages is not None:
                await stages.stop()
            await self._ingest.stop()
            await asyncio.to_thread(self._writer.stop)
            self._writer = self._ingest = None
            raise
        self._stages = stages

    async def stop(self) -> None:
        if self._stages is not None:
            await self._stages.stop()
            self._stages = None
        if self._ingest is not None:
            await self._ingest.stop()
            self._ingest = None
        if self._writer is not None:
            await asyncio.to_thread(self._writer.stop)
            self._writer = None
        if self._turn is not None:
            self._turn.close()
            self._turn = None
        await asyncio.to_thread(self._close_readers)

    def _close_readers(self, grace: float = 30.0) -> None:
        with self._reads_done:
            if not self._reads_done.wait_for(lambda: self._reading == 0, timeout=grace):
                # better an unclosed connection at exit than one closed under a query
                log.warning("store stopped with %d read(s) still running", self._reading)
                return
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self._local = threading.local()

    @property
    def stats(self) -> WriterStats:
        return self._stats

    def workers(self) -> dict[str, dict[str, Any]]:
        """The worker processes: up or not, and how often each was replaced."""
        return {
            child.name: {"up": child.up, "restarts": child.restarts}
            for child in (self._ingest, self._stages)
            if child is not None
        }

    def workers_cpu(self) -> dict[str, float]:
        """CPU seconds each current worker process has used, where /proc tells."""
        found = {
            child.name: child.cpu_seconds()
            for child in (self._ingest, self._stages)
            if child is not None
        }
        return {name: seconds for name, seconds in found.items() if seconds is not None}

    def ingest_waiting(self) -> int:
        """Requests handed to the ingest writer and not yet committed (their acks wait)."""
        return self._ingest.depth() if self._ingest else 0

    def ingest_waited(self) -> float:
        """Seconds the oldest request waiting for its ingest commit has waited."""
        return self._ingest.waited() if self._ingest else 0.0

    def queue_depth(self) -> int:
        """Jobs waiting for a commit (ingest and other writes)."""
        waiting = self._writer.depth() if self._writer else 0
        return waiting + (self._ingest.depth() if self._ingest else 0)

    # --- writing ----------------------------------------------------------------------

    def receive(self, request: tuple[Any, ...], context: Any) -> asyncio.Future[IngestResult]:
        """A request as it arrived, judged by the writer (`admit(context, request)`:
        verify, parse, the reply) and recorded with its events; the future resolves
        after the commit, or fails with StoreUnavailable. `context` (the settings) is
        sent to the writer again only when it is another object."""
        if self._ingest is None:
            raise RuntimeError("store is not started")
        return self._ingest.receive(request, context)

    def ingest(self, job: IngestJob) -> asyncio.Future[IngestResult]:
        """Record a request judged already (and its events); the future resolves after
        the commit, or fails with StoreUnavailable."""
        if self._ingest is None:
            raise RuntimeError("store is not started")
        return self._ingest.submit(job)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        if self._writer is None:
            raise RuntimeError("store is not started")
        result: T = await self._writer.submit(fn, *args)
        return result

    async def write_in_steps(self, fn: Callable[..., int], *args: Any) -> int:
        """A long job over a big table (retention), one bounded step per write turn:
        fn(conn, *args) does a step and returns how much it did; steps run until one does
        nothing, each resting as long as it took (waiting for its turn included) before
        the next. One transaction over an hour's million rows held the write turn for
        ~11 s and every ack waited behind it; steps take at most half the turns, and
        less the busier the hub is (docs/performance.md, "Seventh round")."""
        total = 0
        while True:
            started = time.monotonic()
            done = await self.write(fn, *args)
            if not done:
                return total
            total += done
            await asyncio.sleep(time.monotonic() - started)

    # --- reading ----------------------------------------------------------------------

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        # the loop's own executor, not anyio's workers: anyio starts non-daemon threads
        # that outlive a loop torn down by an exception (the process then never exits)
        return await asyncio.to_thread(self._read, fn, args)

    def _read(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._reads_done:
            self._reading += 1
        try:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = connect(self.path)
                conn.execute("PRAGMA query_only=1")
                self._local.conn = conn
                with self._readers_lock:
                    self._readers.append(conn)
            return fn(conn, *args)
        finally:
            with self._reads_done:
                self._reading -= 1
                self._reads_done.notify_all()

    def run_read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(conn, *args) on a fresh read-only connection, in one read transaction
        (CLI, tests). It takes no write turn: `Store.run` does, and a command's slow read
        (an export, a listing) held every ack of a running hub until it finished."""
        self.migrate()
        conn = connect(self.path)
        try:
            conn.execute("PRAGMA query_only=1")
            conn.execute("BEGIN")  # one snapshot for all of fn's statements
            try:
                return fn(conn, *args)
            finally:
                conn.execute("ROLLBACK")
        finally:
            conn.close()

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(conn, *args) in its own transaction on a fresh connection (CLI, tests).
        It takes its write turn like the hub's writer thread: a command run beside a
        hub in the middle of a burst waits for one commit, not for SQLite's busy handler
        to find a gap between them (it may not within its timeout)."""
        self.migrate()
        conn = connect(self.path)
        turn = Turn(self.path)
        try:
            with turn.thread(), transaction(conn):
                return fn(conn, *args)
        finally:
            turn.close()
            conn.close()

    # --- notifications (event loop thread) --------------------------------------------

    def _on_commit(self, max_event_id: int) -> None:
        for listener in self.commit_listeners:
            listener(max_event_id)

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(conn, *args) in one transaction of the stage runner, a process of its own
        (started on first use): for heavy Python work that would hold the event loop's
        GIL. fn, args and the result must be picklable; wrap a large argument passed
        again and again in `Shared`."""
        if self._writer is None:
            raise RuntimeError("store is not started")
        if self._stages is None:
            if self._stages_starting is None:
                self._stages_starting = asyncio.Lock()
            async with self._stages_starting:
                if self._stages is None:
                    runner = StageRunner(self.path, asyncio.get_running_loop(), self.preload)
                    await runner.start()
                    self._stages = runner
        result: T = await self._stages.call(fn, *args)
        return result

    def _on_batch(self, size: int, seconds: float) -> None:
        self._stats.add(size)
        for listener in self.batch_listeners:
            listener(size, seconds)

    def _on_reply(self, request_id: int, reply: Reply) -> None:
        """Store the answer shaped after the commit (a conflict in the connector's format)."""
        task = asyncio.ensure_future(
            self.write(ingest_sql.set_response, request_id, reply.status, reply.body)
        )
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("storing a reply failed: %s", task.exception())
