"""SQL of the ingest path: record a request and its events, dedupe, decide the outcome.

Runs in the writer thread, inside the batch transaction. Kept to a handful of cached
statements per request: this is the hot path.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.base import Rejection, Reply
from hub.model import OrderEvent, iso_utc, utcnow


@dataclass(slots=True)
class RequestRecord:
    """An inbound request as received, plus what the hub decided before the commit."""

    received_at: str
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    peer: str | None
    platform: str | None
    shop: str | None
    channel: str = "http"
    source: str = "push"
    body_truncated: bool = False
    outcome: str = "accepted"  # accepted | duplicate | rejected | error
    reason: str | None = None
    detail: str | None = None
    forensics: str | None = None


@dataclass(slots=True)
class IngestJob:
    record: RequestRecord
    events: list[OrderEvent]
    reply: Reply  # what to answer when accepted or duplicate (or the rejection reply)
    on_conflict: Callable[[Rejection], Reply] | None = None


@dataclass(slots=True)
class IngestResult:
    request_id: int
    outcome: str
    reason: str | None
    reply: Reply
    new_event_ids: list[int] = field(default_factory=list)


class BatchContext:
    """Per-transaction state: request ids are assigned here so events can point at
    their request before the request row (whose outcome depends on them) is written.

    Request rows are collected and written by `flush` just before the commit, many rows
    per INSERT: each statement step lets go of the GIL and must win it back from the
    event loop, so one step per batch instead of one per request is what keeps the
    writer from queueing behind the handlers (seen with py-spy --native)."""

    __slots__ = ("max_new_event_id", "next_request_id", "now", "requests")

    def __init__(self) -> None:
        self.next_request_id = 0
        self.max_new_event_id = 0
        self.now = ""  # events' created_at: one clock read per transaction, not per event
        self.requests: list[tuple[object, ...]] = []

    def begin(self, conn: sqlite3.Connection) -> None:
        # inside BEGIN IMMEDIATE: no other process can insert until we commit
        row = conn.execute("SELECT max(id) FROM requests").fetchone()
        self.next_request_id = (row[0] or 0) + 1
        self.now = iso_utc(utcnow())

    def take_request_id(self) -> int:
        rid = self.next_request_id
        self.next_request_id += 1
        return rid


INSERT_REQUESTS = """
INSERT INTO requests (id, received_at, channel, source, method, path, query, headers, body,
    body_truncated, peer, platform, shop, outcome, reason, detail, forensics,
    events_new, events_total, response_status, response_body)
VALUES """
REQUEST_ROW = "(" + ",".join("?" * 21) + ")"
# rows per INSERT: a few fixed sizes, so the statement cache holds every text we use
REQUEST_CHUNKS = (256, 64, 16, 4, 1)

INSERT_EVENT = """
INSERT OR IGNORE INTO events (request_id, platform, shop, message_id, dedupe_key, kind,
    platform_type, order_id, occurred_at, amount, currency, payload, payload_sha, source,
    created_at)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
"""


def ingest(conn: sqlite3.Connection, ctx: BatchContext, job: IngestJob) -> IngestResult:
    rec = job.record
    request_id = ctx.take_request_id()
    outcome, reason, reply = rec.outcome, rec.reason, job.reply
    new_ids: list[int] = []
    if job.events:
        now = ctx.now
        conflict: Rejection | None = None
        for event in job.events:
            payload = event.payload_json()
            sha = _sha(payload)
            cur = conn.execute(
                INSERT_EVENT,
                (
                    request_id,
                    event.platform,
                    event.shop,
                    event.message_id,
                    event.dedupe_key,
                    event.kind.value,
                    event.platform_type,
                    event.order_id,
                    iso_utc(event.occurred_at),
                    None if event.amount is None else str(event.amount),
                    event.currency,
                    payload,
                    sha,
                    event.source,
                    now,
                ),
            )
            if cur.rowcount == 1:
                new_ids.append(cur.lastrowid or 0)
                continue
            # only the SAME platform message id with another body is a reuse: with a
            # content key (channels, reconciliation) two messages may describe the same
            # change, and that is a duplicate
            if event.message_id is not None and event.dedupe_key.startswith("m:"):
                row = conn.execute(
                    "SELECT payload_sha, request_id, message_id FROM events WHERE dedupe_key = ?",
                    (event.dedupe_key,),
                ).fetchone()
                if row is not None and row[2] == event.message_id and row[0] != sha:
                    conflict = Rejection(
                        "message_id_reused",
                        f"message id {event.message_id!r} was already delivered with a "
                        f"different body (request {row[1]})",
                        status=409,
                    )
                    break
        if conflict is not None:
            if new_ids:
                conn.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in new_ids])
            new_ids = []
            outcome, reason = "rejected", conflict.reason
            rec.detail = conflict.detail
            reply = job.on_conflict(conflict) if job.on_conflict else reply
        else:
            outcome = "accepted" if new_ids else "duplicate"
            if not new_ids:
                reason = "duplicate"
        if new_ids:
            ctx.max_new_event_id = max(ctx.max_new_event_id, new_ids[-1])
    _add_request(ctx, request_id, rec, outcome, reason, reply, len(new_ids), len(job.events))
    return IngestResult(request_id, outcome, reason, reply, new_ids)


def _ingest_fallback(
    conn: sqlite3.Connection, ctx: BatchContext, error: BaseException, job: IngestJob
) -> IngestResult:
    """The job failed on its own: keep the request, without events, as an internal error."""
    request_id = ctx.take_request_id()
    rec = job.record
    rec.detail = f"{type(error).__name__}: {error}"[:500]
    reply = Reply(500, b'{"error":{"reason":"internal_error"}}')
    _add_request(ctx, request_id, rec, "error", "internal_error", reply, 0, len(job.events))
    return IngestResult(request_id, "error", "internal_error", reply, [])


ingest.fallback = _ingest_fallback  # type: ignore[attr-defined]


def _add_request(
    ctx: BatchContext,
    request_id: int,
    rec: RequestRecord,
    outcome: str,
    reason: str | None,
    reply: Reply,
    events_new: int,
    events_total: int,
) -> None:
    ctx.requests.append(
        (
            request_id,
            rec.received_at,
            rec.channel,
            rec.source,
            rec.method,
            rec.path,
            rec.query,
            json.dumps(rec.headers, ensure_ascii=False),
            rec.body,
            int(rec.body_truncated),
            rec.peer,
            rec.platform,
            rec.shop,
            outcome,
            reason,
            rec.detail,
            rec.forensics,
            events_new,
            events_total,
            reply.status,
            reply.body,
        )
    )


def flush(conn: sqlite3.Connection, ctx: BatchContext) -> None:
    """Write the transaction's request rows; the writer calls this right before COMMIT."""
    rows, ctx.requests = ctx.requests, []
    at = 0
    for size in REQUEST_CHUNKS:
        while len(rows) - at >= size:
            params = [value for row in rows[at : at + size] for value in row]
            conn.execute(INSERT_REQUESTS + ",".join([REQUEST_ROW] * size), params)
            at += size


def set_handling_ms(conn: sqlite3.Connection, timings: list[tuple[float, int]]) -> None:
    conn.executemany("UPDATE requests SET handling_ms = ? WHERE id = ?", timings)


def max_event_id(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(id) FROM events").fetchone()
    return int(row[0] or 0)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
