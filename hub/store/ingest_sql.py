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
    """Per-transaction state of the writer.

    Request and event ids are assigned here (inside BEGIN IMMEDIATE nobody else
    inserts), and their rows are collected and written by `flush` just before the
    commit, many rows per INSERT. Duplicates are found from one lookup of every dedupe
    key in the batch (`prefetch`) plus the keys the batch itself adds. The reason: each
    statement step lets go of the GIL and must win it back from the event loop, so a
    step per batch instead of one or two per request keeps the writer from queueing
    behind the handlers (py-spy --native showed the writer waiting on the GIL)."""

    __slots__ = (
        "checked",
        "events",
        "keys",
        "max_new_event_id",
        "next_event_id",
        "next_request_id",
        "now",
        "requests",
    )

    def __init__(self) -> None:
        self.next_request_id = 0
        self.next_event_id = 0
        self.max_new_event_id = 0
        self.now = ""  # events' created_at: one clock read per transaction, not per event
        self.requests: list[tuple[object, ...]] = []
        self.events: list[tuple[object, ...]] = []
        # dedupe key -> (payload_sha, request_id, message_id) of the stored or batched event
        self.keys: dict[str, tuple[str, int, str | None]] = {}
        self.checked: set[str] = set()  # keys looked up in the table already

    def begin(self, conn: sqlite3.Connection) -> None:
        # inside BEGIN IMMEDIATE: no other process can insert until we commit
        row = conn.execute(
            "SELECT (SELECT max(id) FROM requests), (SELECT max(id) FROM events)"
        ).fetchone()
        self.next_request_id = (row[0] or 0) + 1
        self.next_event_id = (row[1] or 0) + 1
        self.now = iso_utc(utcnow())

    def take_request_id(self) -> int:
        rid = self.next_request_id
        self.next_request_id += 1
        return rid

    def stored(self, conn: sqlite3.Connection, key: str) -> tuple[str, int, str | None] | None:
        """(payload_sha, request_id, message_id) of the event already holding `key`."""
        if key in self.keys or key in self.checked:
            return self.keys.get(key)
        row = conn.execute(
            "SELECT payload_sha, request_id, message_id FROM events WHERE dedupe_key = ?", (key,)
        ).fetchone()
        self.checked.add(key)
        return None if row is None else (row[0], row[1], row[2])


INSERT_REQUESTS = """
INSERT INTO requests (id, received_at, channel, source, method, path, query, headers, body,
    body_truncated, peer, platform, shop, outcome, reason, detail, forensics,
    events_new, events_total, response_status, response_body)
VALUES """

INSERT_EVENTS = """
INSERT INTO events (id, request_id, platform, shop, message_id, dedupe_key, kind,
    platform_type, order_id, occurred_at, amount, currency, payload, payload_sha, source,
    created_at)
VALUES """

# rows per INSERT: a few fixed sizes, so the statement cache holds every text we use
CHUNKS = (256, 64, 16, 4, 1)


def prefetch(conn: sqlite3.Connection, ctx: BatchContext, jobs: list[IngestJob]) -> None:
    """Look up every dedupe key of the batch's events in one query."""
    keys = [event.dedupe_key for job in jobs for event in job.events]
    if not keys:
        return
    rows = conn.execute(
        "SELECT dedupe_key, payload_sha, request_id, message_id FROM events "
        "WHERE dedupe_key IN (SELECT value FROM json_each(?))",
        (json.dumps(keys),),
    ).fetchall()
    for key, sha, request_id, message_id in rows:
        ctx.keys[key] = (sha, request_id, message_id)
    ctx.checked.update(keys)


def ingest(conn: sqlite3.Connection, ctx: BatchContext, job: IngestJob) -> IngestResult:
    rec = job.record
    request_id = ctx.take_request_id()
    outcome, reason, reply = rec.outcome, rec.reason, job.reply
    new_ids: list[int] = []
    if job.events:
        first_id = ctx.next_event_id
        added: list[str] = []
        rows: list[tuple[object, ...]] = []
        conflict: Rejection | None = None
        for event in job.events:
            payload = event.payload_json()
            sha = _sha(payload)
            key = event.dedupe_key
            stored = ctx.stored(conn, key)
            if stored is None:
                event_id = ctx.next_event_id
                ctx.next_event_id += 1
                ctx.keys[key] = (sha, request_id, event.message_id)
                added.append(key)
                new_ids.append(event_id)
                rows.append(
                    (
                        event_id,
                        request_id,
                        event.platform,
                        event.shop,
                        event.message_id,
                        key,
                        event.kind.value,
                        event.platform_type,
                        event.order_id,
                        iso_utc(event.occurred_at),
                        None if event.amount is None else str(event.amount),
                        event.currency,
                        payload,
                        sha,
                        event.source,
                        ctx.now,
                    )
                )
            # only the SAME platform message id with another body is a reuse: with a
            # content key (channels, reconciliation) two messages may describe the same
            # change, and that is a duplicate
            elif (
                event.message_id is not None
                and key.startswith("m:")
                and stored[2] == event.message_id
                and stored[0] != sha
            ):
                conflict = Rejection(
                    "message_id_reused",
                    f"message id {event.message_id!r} was already delivered with a "
                    f"different body (request {stored[1]})",
                    status=409,
                )
                break
        if conflict is not None:
            for key in added:  # none of this request's events are kept
                del ctx.keys[key]
            ctx.next_event_id = first_id
            new_ids = []
            outcome, reason = "rejected", conflict.reason
            rec.detail = conflict.detail
            reply = job.on_conflict(conflict) if job.on_conflict else reply
        else:
            ctx.events.extend(rows)
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
    """Write the transaction's event and request rows; the writer calls this right
    before COMMIT."""
    events, ctx.events = ctx.events, []
    requests, ctx.requests = ctx.requests, []
    _insert_many(conn, INSERT_EVENTS, events)
    _insert_many(conn, INSERT_REQUESTS, requests)


def _insert_many(conn: sqlite3.Connection, head: str, rows: list[tuple[object, ...]]) -> None:
    if not rows:
        return
    one = "(" + ",".join("?" * len(rows[0])) + ")"
    at = 0
    for size in CHUNKS:
        while len(rows) - at >= size:
            params = [value for row in rows[at : at + size] for value in row]
            conn.execute(head + ",".join([one] * size), params)
            at += size


def set_handling_ms(conn: sqlite3.Connection, timings: list[tuple[float, int]]) -> None:
    """Record (milliseconds, request id) pairs, all in one statement (one step)."""
    conn.execute(
        "UPDATE requests SET handling_ms = t.value ->> 0 "
        "FROM json_each(?) AS t WHERE requests.id = t.value ->> 1",
        (json.dumps(timings),),
    )


def max_event_id(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(id) FROM events").fetchone()
    return int(row[0] or 0)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
