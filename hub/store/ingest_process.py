"""The ingest writer: a process of its own that judges and records every push.

Why a process: the event loop runs the HTTP server, and its time per request is what
caps a burst; verify, parse and building the record's rows (SQLite's inserts, the
commit) were more than its own share. In one process they take turns on the GIL, so a
second core does not help. Here the event loop sends each request as it arrived, a
plain tuple over a socket pair; the writer, on the other core, judges it with the hub's
`admit` (connector, shop, verify, parse, reply), group-commits whatever arrived while
the previous commit was being written to disk (synchronous=FULL), and answers the
outcome and the reply only after COMMIT returns.

    event loop  --requests-->  serve(): admit; BEGIN; dedupe + rows; COMMIT  --replies-->

A frame is a 4-byte length and a `marshal`-encoded (settings, items) pair: the settings
`admit` judges by, pickled, only when they changed or the writer is new (else None);
the items are received requests (`IngestWriter.receive`) or jobs the event loop judged
itself (`submit`: channel messages, reconciliation pages; see `ingest_sql.to_wire`).
The writer exits when the event loop closes its end (after writing what it was sent);
if the writer dies, every request waiting on it is answered 503 (the platform sends it
again and the dedupe key catches the ones that did commit) and a new writer starts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import marshal
import pickle
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.base import Rejection, Reply
from hub.model import Kind
from hub.store import ingest_sql
from hub.store.child import (
    BUFFER,
    READY,
    Child,
    FrameReader,
    StoreUnavailable,
    resolve,
    send_blocking,
    warm,
    worker_setup,
)
from hub.store.connection import connect, transaction
from hub.store.ingest_sql import IngestJob, IngestResult
from hub.store.turn import Turn

log = logging.getLogger("orderhook.store")

STREAM = 16  # jobs sent at once while the writer is busy
IDLE = 0.2  # seconds without work before the writer records pending handling times
RECEIVED = 3  # a received item is (seq, submitted, request); a judged one is longer

INTERNAL_ERROR = Reply(500, ingest_sql.INTERNAL_ERROR_BODY)
CONFLICT = Reply(409, ingest_sql.CONFLICT_BODY)


# --- the writer process -----------------------------------------------------------------


def main() -> None:
    """The writer process (argv: FD DB MAX_BATCH ADMIT [PRELOAD...]), started by
    `IngestWriter`."""
    fd, db, max_batch, admit, *preload = sys.argv[1:]
    worker_setup()
    warm(preload)
    turn = Turn(db)
    try:
        serve(db, socket.socket(fileno=int(fd)), turn, int(max_batch), Judge(admit))
    finally:
        turn.close()


def serve(path: str, sock: socket.socket, turn: Turn, max_batch: int, judge: Judge) -> None:
    """Judge and commit what arrives until the event loop hangs up."""
    conn = connect(path)
    batches = Batches(conn)
    settle()
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
                    batches.flush_later()
                continue
            except ConnectionResetError:  # the hub died with our answers unread
                chunk = b""
            if not chunk:
                open_ = False
            handle(reader.feed(chunk), sock, turn, max_batch, batches, judge)
            sweep()
        with turn.ingest():
            batches.flush_later()
    finally:
        conn.close()
        sock.close()


def handle(
    frames: list[bytes],
    sock: socket.socket,
    turn: Turn,
    max_batch: int,
    batches: Batches,
    judge: Judge,
) -> None:
    """Judge what arrived, commit it `max_batch` jobs at a time, answer each batch."""
    # received requests are judged before the write turn is taken: verify and parse do
    # not hold the database
    jobs = [job for data in frames for job in judge.frame(data)]
    for at in range(0, len(jobs), max_batch):
        part = jobs[at : at + max_batch]
        started = time.monotonic()
        answers, max_event_id = write(part, turn, batches, judge)
        done = (answers, len(part), time.monotonic() - started, max_event_id)
        send_blocking(sock, marshal.dumps(done))


# The writer's own objects die by reference counting (bench.writer: not one object in a
# run of thousands of pushes was freed by the collector), but left to its thresholds the
# collector ran every 700 allocations, in the middle of a batch, walking the batch's
# live JSON trees and rows again and again: ~15 µs a push. So it runs between batches,
# when what it walks is only what outlived them; a full pass now and then is the safety
# net for whatever does make cycles.
FULL_COLLECTION_EVERY = 1000  # sweeps


def settle() -> None:
    """Once the writer is set up: what exists now (modules, connectors) lives as long as
    the process, and stays out of every collection (as in the served hub); collections
    happen in `sweep` only."""
    gc.collect()
    gc.freeze()
    gc.disable()
    _sweeps[0] = 0


def sweep() -> None:
    """Collect between batches (see above), once the batch's objects are gone."""
    _sweeps[0] += 1
    gc.collect(2 if _sweeps[0] % FULL_COLLECTION_EVERY == 0 else 0)


_sweeps = [0]


def write(
    part: list[tuple[tuple[Any, ...], IngestJob | None]], turn: Turn, batches: Batches, judge: Judge
) -> tuple[list[tuple[Any, ...]], int]:
    """Commit one batch of `Judge.frame`'s jobs in the write turn; the answers for the event
    loop and the highest new event id."""
    with turn.ingest():
        outcomes, max_event_id = batches.commit([wire for wire, _ in part])
    answers = [
        judge.answer(outcome, job, batches)
        for outcome, (_, job) in zip(outcomes, part, strict=True)
    ]
    return answers, max_event_id


class Judge:
    """The writer's side of `IngestWriter.receive`: a received request becomes a job
    here (`admit`, the hub's verify and parse, under the settings the event loop sent
    last), and its outcome becomes the reply the event loop sends."""

    def __init__(self, admit: str) -> None:
        self.admit: Callable[[Any, Any], IngestJob] | None = (
            None if admit == "-" else resolve(admit)
        )
        self.context: Any = None

    def frame(self, data: bytes) -> list[tuple[tuple[Any, ...], IngestJob | None]]:
        """A frame's jobs as (wire, the job judged here or None)."""
        context, items = marshal.loads(data)
        if context is not None:
            self.context = pickle.loads(context)
        return [self._job(item) if len(item) == RECEIVED else (item, None) for item in items]

    def _job(self, item: tuple[Any, ...]) -> tuple[tuple[Any, ...], IngestJob]:
        seq, submitted, received = item
        try:
            if self.admit is None:
                raise RuntimeError("received a request, but the writer has no admit function")
            job = self.admit(self.context, received)
            return ingest_sql.to_wire(seq, submitted, job), job
        except Exception as exc:  # our bug: keep the request as it came, answer 500
            log.exception("judging a received request failed")
            job = _as_internal_error(received_job(received), exc)
            return ingest_sql.to_wire(seq, submitted, job), job

    def answer(
        self, outcome: ingest_sql.Outcome, job: IngestJob | None, batches: Batches
    ) -> tuple[Any, ...]:
        """What the event loop gets back for one job: the outcome, and for a job judged
        here its reply and what the metrics count."""
        if job is None:
            return outcome
        request_id, result, reason, detail = outcome[1], outcome[2], outcome[3], outcome[4]
        reply = job.reply
        if result == "error" and job.record.outcome != "error":  # the store failed it
            reply = INTERNAL_ERROR
        elif reason == "message_id_reused":
            reply = conflict_reply(job, detail)
            if reply != CONFLICT:
                batches.responses.append((request_id, reply.status, reply.body))
        unknown = [(e.platform, e.platform_type) for e in job.events if e.kind is Kind.OTHER]
        shaped = (reply.status, reply.body, reply.content_type, reply.headers)
        return (*outcome, shaped, job.labels, job.record.forensics, unknown)


def received_job(received: tuple[Any, ...]) -> IngestJob:
    """A received request kept as it came, with nothing judged (`admit` failed)."""
    received_us, method, path, query, headers, body, peer, truncated = received
    record = ingest_sql.RequestRecord(
        received_at=ingest_sql.EPOCH + received_us * ingest_sql.MICROSECOND,
        method=method,
        path=path,
        query=query.decode("latin-1"),
        headers=headers,
        body=body,
        peer=peer,
        platform=None,
        shop=None,
        body_truncated=truncated,
    )
    return IngestJob(record, [], INTERNAL_ERROR)


def conflict_reply(job: IngestJob, detail: str | None) -> Reply:
    """The answer to a reused message id, in the connector's shape when it has one."""
    if job.on_conflict is None:
        return CONFLICT
    try:
        return job.on_conflict(Rejection("message_id_reused", detail or "", status=409))
    except Exception:
        log.exception("connector failed to shape its conflict reply")
        return CONFLICT


class Batches:
    """One transaction per batch; a job that fails is replayed alone, and one that
    still fails is recorded without its events (outcome `error`): the request is kept."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.timing: list[tuple[float, int]] = []  # (handling ms, request id), not yet stored
        # (request id, status, body): answers shaped after their commit (a conflict in
        # the connector's own format), stored with the next batch
        self.responses: list[tuple[int, int, bytes]] = []

    def commit(self, jobs: list[tuple[Any, ...]]) -> tuple[list[ingest_sql.Outcome], int]:
        conn = self.conn
        ctx = ingest_sql.BatchContext()
        try:
            with transaction(conn):
                ctx.begin(conn)
                self._store_later()
                ingest_sql.prefetch(conn, ctx, jobs)
                outcomes = [ingest_sql.ingest(conn, ctx, job) for job in jobs]
                ingest_sql.flush(conn, ctx)
            self.timing, self.responses = [], []
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

    def _store_later(self) -> None:
        if self.timing:
            ingest_sql.set_handling_ms(self.conn, self.timing)
        for request_id, status, body in self.responses:
            ingest_sql.set_response(self.conn, request_id, status, body)

    def _alone(self, job: tuple[Any, ...]) -> ingest_sql.Outcome:
        try:
            return _in_transaction(self.conn, ingest_sql.ingest, job)
        except Exception as exc:
            try:
                return _in_transaction(self.conn, ingest_sql.fallback, exc, job)
            except Exception as exc2:  # the disk itself is failing
                return (job[0], 0, "unavailable", f"{type(exc2).__name__}: {exc2}", None, [])

    def flush_later(self) -> None:
        """Store the handling times and late answers now (the writer is idle)."""
        if not (self.timing or self.responses):
            return
        with contextlib.suppress(sqlite3.Error), transaction(self.conn):
            self._store_later()
        self.timing, self.responses = [], []


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
        admit: str | None,
        preload: tuple[str, ...] = (),
        on_batch: Callable[[int, float], None],
        on_commit: Callable[[int], None],
        on_reply: Callable[[int, Reply], None],
    ) -> None:
        super().__init__(loop, [str(path), str(max_batch), admit or "-", *preload])
        self.admits = admit is not None
        self.on_batch = on_batch  # (jobs, seconds) per committed batch
        self.on_commit = on_commit  # (highest new event id)
        self.on_reply = on_reply  # (request id, reply) shaped after the commit: store it
        self._seq = 0
        # seq -> (future, the job when the event loop judged it, None when the writer did)
        self._pending: dict[int, tuple[asyncio.Future[IngestResult], IngestJob | None]] = {}
        self._outbox: list[tuple[Any, ...]] = []
        # (seq, submitted) in the order sent; the writer answers in that order, so the
        # first one still pending is the oldest (answered ones are dropped lazily)
        self._sent_at: collections.deque[tuple[int, float]] = collections.deque()
        self._flush_scheduled = False
        # a frame is out and the writer has not answered it yet: new jobs wait here and
        # go together when it answers (it could not start them sooner: it is committing),
        # one socket write per commit instead of one per turn of the loop
        self._busy = False
        # what `admit` judges by (the settings): pickled once per object, sent with the
        # next frame whenever it changed or the writer is new
        self._context: Any = None
        self._context_pickled: bytes | None = None
        self._context_due = False

    def depth(self) -> int:
        return len(self._pending)

    def waited(self) -> float:
        """Seconds the oldest job still waiting for its commit has waited (0.0: none)."""
        sent_at, pending = self._sent_at, self._pending
        while sent_at and sent_at[0][0] not in pending:
            sent_at.popleft()
        return time.monotonic() - sent_at[0][1] if sent_at else 0.0

    def started(self) -> None:
        self._flush()

    async def stop(self) -> None:
        self._flush()  # what was submitted before the stop still goes out
        await super().stop()

    def submit(self, job: IngestJob) -> asyncio.Future[IngestResult]:
        """A job the event loop judged (a channel message, a reconciliation page)."""
        seq = self._next()
        try:
            wire = ingest_sql.to_wire(seq, time.monotonic(), job)
            marshal.dumps(wire[3])  # type: ignore[arg-type]  # plain values only, or raise
        except Exception as exc:  # a connector built an event we cannot store: its bug
            log.exception("cannot encode the events of %s", job.record.path)
            job = _as_internal_error(job, exc)
            wire = ingest_sql.to_wire(seq, time.monotonic(), job)
        return self._queue(seq, wire, job)

    def receive(self, received: tuple[Any, ...], context: Any) -> asyncio.Future[IngestResult]:
        """A request as it arrived, for the writer to judge (`admit(context, received)`)
        and record; `context` is pickled when it is not the object sent last."""
        if not self.admits:
            raise RuntimeError("this store was started without an admit function")
        if context is not self._context:
            self._context = context
            self._context_pickled = pickle.dumps(context, pickle.HIGHEST_PROTOCOL)
            self._context_due = True
        seq = self._next()
        return self._queue(seq, (seq, time.monotonic(), received), None)

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _queue(
        self, seq: int, wire: tuple[Any, ...], job: IngestJob | None
    ) -> asyncio.Future[IngestResult]:
        future: asyncio.Future[IngestResult] = self.loop.create_future()
        self._pending[seq] = (future, job)
        self._sent_at.append((seq, wire[1]))  # type: ignore[arg-type]
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
        items, self._outbox = self._outbox, []
        context = self._context_pickled if self._context_due else None
        try:
            data = marshal.dumps((context, items))
        except ValueError:  # a value marshal cannot carry: fail those jobs alone
            items = self._encodable(items)
            data = marshal.dumps((context, items))
        # busy only while a frame with jobs in it waits for its answer
        self._busy = bool(items) and self.send(data)
        if self._busy:
            self._context_due = False

    def _encodable(self, items: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        kept = []
        for item in items:
            try:
                marshal.dumps(item)
            except ValueError as exc:
                future, _ = self._pending.pop(item[0])
                future.set_exception(StoreUnavailable(f"cannot send the request: {exc}"))
            else:
                kept.append(item)
        return kept

    def received(self, data: bytes) -> None:
        answers, size, seconds, max_event_id = marshal.loads(data)
        for answer in answers:
            seq, request_id, outcome, reason, detail, new_ids = answer[:6]
            future, job = self._pending.pop(seq)
            if future.done():
                continue
            if outcome == "unavailable":
                future.set_exception(StoreUnavailable(reason))
            elif job is None:  # judged by the writer, which shaped the reply
                (status, body, content_type, headers), labels, forensics, unknown = answer[6:]
                reply = Reply(status, body, content_type, headers)
                result = IngestResult(request_id, outcome, reason, reply, new_ids)
                result.labels, result.forensics, result.unknown = labels, forensics, unknown
                future.set_result(result)
            else:
                reply = job.reply
                if outcome == "error":
                    reply = INTERNAL_ERROR
                elif reason == "message_id_reused":
                    reply = conflict_reply(job, detail)
                    if reply != CONFLICT:
                        self.on_reply(request_id, reply)
                future.set_result(IngestResult(request_id, outcome, reason, reply, new_ids))
        self.waited()  # drops the answered ones from `_sent_at`
        self._flush()  # what arrived during that commit
        self.on_batch(size, seconds)
        if max_event_id:
            self.on_commit(max_event_id)

    def abandon(self, reason: str) -> int:
        self._busy = False
        # the next writer has not seen the settings: they go with its first frame (which
        # may leave before it says `ready`)
        self._context_due = self._context is not None
        waiting = list(self._pending.values())
        self._pending.clear()
        self._sent_at.clear()
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
