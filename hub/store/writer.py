"""The hub's writer thread: group-commits every write that is not an ingest.

Stages and API handlers put `fn(conn, *args)` jobs on a queue and await a future. The
thread takes whatever is queued (up to `max_batch`), runs it all in ONE transaction,
commits (synchronous=FULL: on disk when it returns), and only then resolves the futures,
so a decision and what it causes (an outbox row, a notification) are durable together.
If a job raises, the batch is rolled back and each job replayed in its own transaction,
so one bad job cannot take its neighbours down.

Ingest has a writer of its own in another process (`ingest_process`); the two take
turns through `Turn`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.store.connection import connect, transaction
from hub.store.turn import Turn

log = logging.getLogger("orderhook.store")

_STOP = object()


@dataclass(slots=True)
class WriteJob:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]


@dataclass
class WriterStats:
    """Batches of the ingest writer (what the hot path shares a commit with)."""

    batches: int = 0
    jobs: int = 0
    last_batch: int = 0
    max_batch_seen: int = 0
    batch_sizes: list[int] = field(default_factory=list)  # last few, for tests and the board

    def add(self, size: int) -> None:
        self.batches += 1
        self.jobs += size
        self.last_batch = size
        self.max_batch_seen = max(self.max_batch_seen, size)
        self.batch_sizes = [*self.batch_sizes[-63:], size]


class Writer:
    def __init__(
        self, path: Path, loop: asyncio.AbstractEventLoop, turn: Turn, *, max_batch: int = 256
    ) -> None:
        self.path = path
        self.loop = loop
        self.turn = turn
        self.max_batch = max_batch
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="orderhook-writer", daemon=True)
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
        self._q.put(WriteJob(fn, args, future))
        return future

    # --- the thread ---------------------------------------------------------------

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while True:
                first = self._q.get()
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
                with self.turn.thread():
                    results = self._commit_batch(conn, batch)
                self.loop.call_soon_threadsafe(_resolve, results)
                if stop:
                    break
        finally:
            conn.close()

    def _commit_batch(
        self, conn: sqlite3.Connection, batch: list[WriteJob]
    ) -> list[tuple[WriteJob, Any, BaseException | None]]:
        try:
            with transaction(conn):
                results: list[tuple[WriteJob, Any, BaseException | None]] = [
                    (job, job.fn(conn, *job.args), None) for job in batch
                ]
            return results
        except Exception:
            log.exception("batch of %d failed; replaying its jobs one by one", len(batch))
            return [self._commit_alone(conn, job) for job in batch]

    def _commit_alone(
        self, conn: sqlite3.Connection, job: WriteJob
    ) -> tuple[WriteJob, Any, BaseException | None]:
        try:
            with transaction(conn):
                result = job.fn(conn, *job.args)
            return job, result, None
        except Exception as exc:
            return job, None, exc


def _resolve(results: list[tuple[WriteJob, Any, BaseException | None]]) -> None:
    for job, result, error in results:
        if job.future.done():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
