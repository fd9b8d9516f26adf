"""The ingest writer: a process of its own that records every request and its events.

Why a process: the event loop verifies, parses and answers; recording (building rows,
SQLite's inserts, the commit) is as much work again. In one process the two take turns
on the GIL, so a second core does not help and each waits on the other (py-spy showed
the writer thread queueing for the GIL after every statement). Here the event loop
sends each job as a small tuple over a socket pair and gets the outcome back; the
writer, on the other core, group-commits whatever arrived while the previous commit
was being written to disk (synchronous=FULL), and answers only after COMMIT returns.

    event loop  --job frames-->  serve(): BEGIN; dedupe + rows; COMMIT  --outcomes-->

A frame is a 4-byte length and a `marshal`-encoded list (see `ingest_sql.to_wire`).
The writer exits when the event loop closes its end (after writing what it was sent);
if the writer dies, every request waiting on it is answered 503 (the platform sends it
again and the dedupe key catches the ones that did commit) and a new writer starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.base import Rejection, Reply
from hub.store import ingest_sql
from hub.store.child import (
    BUFFER,
    READY,
    Child,
    FrameReader,
    StoreUnavailable,
    send_blocking,
    worker_setup,
)
from hub.store.connection import connect, transaction
from hub.store.ingest_sql import IngestJob, IngestResult
from hub.store.turn import Turn

log = logging.getLogger("orderhook.store")

STREAM = 16  # jobs sent at once while the writer is busy
IDLE = 0.2  # seconds without work before the writer records pending handling times

INTERNAL_ERROR = Reply(500, ingest_sql.INTERNAL_ERROR_BODY)


# --- the writer process -----------------------------------------------------------------


def main() -> None:
    """The writer process (argv: FD DB MAX_BATCH), started by `IngestWriter`."""
    fd, db, max_batch = sys.argv[1:4]
    worker_setup()
    turn = Turn(db)
    try:
        serve(db, socket.socket(fileno=int(fd)), turn, int(max_batch))
    finally:
        turn.close()


def serve(path: str, sock: socket.socket, turn: Turn, max_batch: int) -> None:
    """Commit what arrives until the event loop hangs up."""
    conn = connect(path)
    batches = Batches(conn)
    sock.settimeout(IDLE)
    send_blocking(sock, READY)
    reader = FrameReader()
    open_ = True
    try:
        while open_:
            try:
                chunk = sock.recv(BUFFER)
            except TimeoutError:
                if not reader.partial:
                    batches.flush_timing()
                continue
            except ConnectionResetError:  # the hub died with our answers unread
                chunk = b""
            if not chunk:
                open_ = False
            jobs = [job for frame in reader.feed(chunk) for job in marshal.loads(frame)]
            for at in range(0, len(jobs), max_batch):
                part = jobs[at : at + max_batch]
                started = time.monotonic()
                with turn.ingest():
                    outcomes, max_event_id = batches.commit(part)
                done = (outcomes, len(part), time.monotonic() - started, max_event_id)
                send_blocking(sock, marshal.dumps(done))
        with turn.ingest():
            batches.flush_timing()
    finally:
        conn.close()
        sock.close()


class Batches:
    """One transaction per batch; a job that fails is replayed alone, and one that
    still fails is recorded without its events (outcome `error`): the request is kept."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.timing: list[tuple[float, int]] = []  # (handling ms, request id), not yet stored

    def commit(self, jobs: list[tuple[Any, ...]]) -> tuple[list[ingest_sql.Outcome], int]:
        conn = self.conn
        ctx = ingest_sql.BatchContext()
        try:
            with transaction(conn):
                ctx.begin(conn)
                if self.timing:
                    ingest_sql.set_handling_ms(conn, self.timing)
                ingest_sql.prefetch(conn, ctx, jobs)
                outcomes = [ingest_sql.ingest(conn, ctx, job) for job in jobs]
                ingest_sql.flush(conn, ctx)
            self.timing = []
            max_event_id = ctx.max_new_event_id
        except Exception:
            log.exception("batch of %d failed; replaying its jobs one by one", len(jobs))
            outcomes = [self._alone(job) for job in jobs]
            max_event_id = ingest_sql.max_event_id(conn)
        done = time.monotonic()
        self.timing.extend(
            ((done - job[1]) * 1000.0, outcome[1])
            for job, outcome in zip(jobs, outcomes, strict=True)
            if outcome[1] > 0
        )
        return outcomes, max_event_id

    def _alone(self, job: tuple[Any, ...]) -> ingest_sql.Outcome:
        try:
            return _in_transaction(self.conn, ingest_sql.ingest, job)
        except Exception as exc:
            try:
                return _in_transaction(self.conn, ingest_sql.fallback, exc, job)
            except Exception as exc2:  # the disk itself is failing
                return (job[0], 0, "unavailable", f"{type(exc2).__name__}: {exc2}", None, [])

    def flush_timing(self) -> None:
        if not self.timing:
            return
        with contextlib.suppress(sqlite3.Error), transaction(self.conn):
            ingest_sql.set_handling_ms(self.conn, self.timing)
        self.timing = []


def _in_transaction(conn: sqlite3.Connection, fn: Callable[..., Any], *args: Any) -> Any:
    ctx = ingest_sql.BatchContext()
    with transaction(conn):
        ctx.begin(conn)
        result = fn(conn, ctx, *args)
        ingest_sql.flush(conn, ctx)
    return result


# --- the event loop's side --------------------------------------------------------------


class IngestWriter(Child):
    """Sends ingest jobs to the writer process and resolves each one's future with its
    outcome once the writer has committed it. Event loop thread only."""

    name = "ingest writer"
    entry = f"{__name__}:main"

    def __init__(
        self,
        path: Path,
        loop: asyncio.AbstractEventLoop,
        *,
        max_batch: int,
        on_batch: Callable[[int, float], None],
        on_commit: Callable[[int], None],
        on_reply: Callable[[int, Reply], None],
    ) -> None:
        super().__init__(loop, [str(path), str(max_batch)])
        self.on_batch = on_batch  # (jobs, seconds) per committed batch
        self.on_commit = on_commit  # (highest new event id)
        self.on_reply = on_reply  # (request id, reply) shaped after the commit: store it
        self._seq = 0
        self._pending: dict[int, tuple[asyncio.Future[IngestResult], IngestJob]] = {}
        self._outbox: list[tuple[Any, ...]] = []
        self._flush_scheduled = False
        # a frame is out and the writer has not answered it yet: new jobs wait here and
        # go together when it answers (it could not start them sooner: it is committing),
        # one socket write per commit instead of one per turn of the loop
        self._busy = False

    def depth(self) -> int:
        return len(self._pending)

    def started(self) -> None:
        self._flush()

    async def stop(self) -> None:
        self._flush()  # what was submitted before the stop still goes out
        await super().stop()

    def submit(self, job: IngestJob) -> asyncio.Future[IngestResult]:
        self._seq += 1
        seq = self._seq
        future: asyncio.Future[IngestResult] = self.loop.create_future()
        try:
            wire = ingest_sql.to_wire(seq, time.monotonic(), job)
            marshal.dumps(wire[3])  # type: ignore[arg-type]  # plain values only, or raise
        except Exception as exc:  # a connector built an event we cannot store: its bug
            log.exception("cannot encode the events of %s", job.record.path)
            job = _as_internal_error(job, exc)
            wire = ingest_sql.to_wire(seq, time.monotonic(), job)
        self._pending[seq] = (future, job)
        self._outbox.append(wire)
        # while the writer commits, jobs still go out in handfuls (not one write per
        # job), so its next batch is already in its socket when the commit returns
        if (not self._busy or len(self._outbox) >= STREAM) and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        """Everything submitted since the last frame, as one frame."""
        self._flush_scheduled = False
        if not self._outbox or self.transport is None or self.transport.is_closing():
            self._busy = False
            return
        self._busy = self.send(marshal.dumps(self._outbox))
        self._outbox = []

    def received(self, data: bytes) -> None:
        outcomes, size, seconds, max_event_id = marshal.loads(data)
        for seq, request_id, outcome, reason, detail, new_ids in outcomes:
            future, job = self._pending.pop(seq)
            if future.done():
                continue
            if outcome == "unavailable":
                future.set_exception(StoreUnavailable(reason))
                continue
            reply = job.reply
            if outcome == "error":
                reply = INTERNAL_ERROR
            elif reason == "message_id_reused":
                reply = self._conflict_reply(job, request_id, detail)
            future.set_result(IngestResult(request_id, outcome, reason, reply, new_ids))
        self._flush()  # what arrived during that commit
        self.on_batch(size, seconds)
        if max_event_id:
            self.on_commit(max_event_id)

    def _conflict_reply(self, job: IngestJob, request_id: int, detail: str | None) -> Reply:
        fallback = Reply(409, ingest_sql.CONFLICT_BODY)
        if job.on_conflict is None:
            return fallback
        try:
            reply = job.on_conflict(Rejection("message_id_reused", detail or "", status=409))
        except Exception:
            log.exception("connector failed to shape its conflict reply")
            return fallback
        if reply != fallback:
            self.on_reply(request_id, reply)
        return reply

    def abandon(self, reason: str) -> int:
        self._busy = False
        waiting = list(self._pending.values())
        self._pending.clear()
        self._outbox = []
        for future, _ in waiting:
            if not future.done():
                future.set_exception(StoreUnavailable(reason))
        return len(waiting)


def _as_internal_error(job: IngestJob, exc: Exception) -> IngestJob:
    rec = job.record
    rec.outcome, rec.reason = "error", "internal_error"
    rec.detail = f"{type(exc).__name__}: {exc}"[:500]
    return IngestJob(rec, [], INTERNAL_ERROR)
