"""The one writer: a thread that group-commits everything the hub writes.

Handlers put jobs on a queue and await a future. The thread takes whatever is queued
(up to `max_batch`), runs it all in ONE transaction, commits (synchronous=FULL: the
commit is on disk when it returns), and only then resolves the futures — so every ack
the hub sends is for something already durable, and one fsync is shared by every
request that arrived while the previous one ran.

If a job raises, the batch is rolled back and each job is replayed in its own
transaction, so one bad job cannot take its neighbours down; an ingest job that still
fails is recorded without its events (outcome `error`) so the request itself is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.store import ingest_sql

log = logging.getLogger("orderhook.store")

_STOP = object()


@dataclass(slots=True)
class WriteJob:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any] | None
    t0: float = 0.0


@dataclass
class WriterStats:
    batches: int = 0
    jobs: int = 0
    last_batch: int = 0
    max_batch_seen: int = 0
    batch_sizes: list[int] = field(default_factory=list)  # last few, for tests and the board


def connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit survives power loss, not just a process crash (an ack is a promise)
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


class Writer:
    def __init__(
        self,
        path: Path,
        loop: asyncio.AbstractEventLoop,
        *,
        max_batch: int = 1024,
        on_batch: Callable[[int, float], None] | None = None,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path
        self.loop = loop
        self.max_batch = max_batch
        self.on_batch = on_batch  # (size, seconds) in the writer thread, for metrics
        self.on_commit = on_commit  # (highest new event id) in the event loop
        self.stats = WriterStats()
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="orderhook-writer", daemon=True)
        self._pending_timing: list[tuple[float, int]] = []
        self._conn: sqlite3.Connection | None = None

    def start(self) -> None:
        self._conn = connect(self.path)
        self._thread.start()

    def stop(self) -> None:
        self._q.put(_STOP)
        self._thread.join()

    def depth(self) -> int:
        return self._q.qsize()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        self._q.put(WriteJob(fn, args, future, time.perf_counter()))
        return future

    # --- the thread ---------------------------------------------------------------

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while True:
                try:
                    first = self._q.get(timeout=0.2)
                except queue.Empty:
                    if self._pending_timing:
                        self._flush_timing(conn)
                    continue
                if first is _STOP:
                    break
                batch = [first]
                stop = False
                while len(batch) < self.max_batch:
                    try:
                        job = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if job is _STOP:
                        stop = True
                        break
                    batch.append(job)
                self._commit_batch(conn, batch)
                if stop:
                    break
            if self._pending_timing:
                self._flush_timing(conn)
        finally:
            conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[WriteJob]) -> None:
        started = time.perf_counter()
        ctx = ingest_sql.BatchContext()
        results: list[tuple[WriteJob, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            ctx.begin(conn)
            if self._pending_timing:
                ingest_sql.set_handling_ms(conn, self._pending_timing)
                self._pending_timing = []
            ingest_sql.prefetch(
                conn, ctx, [job.args[0] for job in batch if job.fn is ingest_sql.ingest]
            )
            for job in batch:
                results.append((job, job.fn(conn, ctx, *job.args), None))
            ingest_sql.flush(conn, ctx)
            conn.execute("COMMIT")
        except Exception:
            log.exception("batch of %d failed; replaying its jobs one by one", len(batch))
            _rollback(conn)
            results = [self._commit_alone(conn, job) for job in batch]
            ctx.max_new_event_id = ingest_sql.max_event_id(conn)
        done = time.perf_counter()
        for job, result, _ in results:
            if isinstance(result, ingest_sql.IngestResult):
                self._pending_timing.append(((done - job.t0) * 1000.0, result.request_id))
        self.stats.batches += 1
        self.stats.jobs += len(batch)
        self.stats.last_batch = len(batch)
        self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(batch))
        self.stats.batch_sizes = [*self.stats.batch_sizes[-63:], len(batch)]
        if self.on_batch is not None:
            self.on_batch(len(batch), done - started)
        self.loop.call_soon_threadsafe(self._resolve, results, ctx.max_new_event_id)

    def _commit_alone(
        self, conn: sqlite3.Connection, job: WriteJob
    ) -> tuple[WriteJob, Any, BaseException | None]:
        try:
            return job, _in_transaction(conn, job.fn, *job.args), None
        except Exception as exc:
            fallback = getattr(job.fn, "fallback", None)
            if fallback is None:
                return job, None, exc
            try:
                return job, _in_transaction(conn, fallback, exc, *job.args), None
            except Exception as exc2:  # the disk itself is failing
                return job, None, exc2

    def _flush_timing(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            ingest_sql.set_handling_ms(conn, self._pending_timing)
            conn.execute("COMMIT")
        except sqlite3.Error:
            _rollback(conn)
        self._pending_timing = []

    def _resolve(
        self, results: list[tuple[WriteJob, Any, BaseException | None]], max_event_id: int
    ) -> None:
        for job, result, error in results:
            future = job.future
            if future is None or future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        if max_event_id and self.on_commit is not None:
            self.on_commit(max_event_id)


def _in_transaction(conn: sqlite3.Connection, fn: Callable[..., Any], *args: Any) -> Any:
    ctx = ingest_sql.BatchContext()
    conn.execute("BEGIN IMMEDIATE")
    try:
        ctx.begin(conn)
        result = fn(conn, ctx, *args)
        ingest_sql.flush(conn, ctx)
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return result


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")
