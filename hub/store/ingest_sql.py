"""SQL of the ingest path: record a request and its events, dedupe, decide the outcome.

Each job becomes a plain tuple (`to_wire`): in the ingest writer process for a push it
judged itself, in the event loop for a job judged there (channel messages,
reconciliation pages). The writer (`ingest_process`) runs the rest inside its batch
transaction. Kept to a handful of cached statements per batch: this is the hot path.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from connectors.base import Rejection, Reply
from hub.model import OrderEvent, canonical_json, iso_utc, utcnow
from hub.store.batch_sql import insert_many


@dataclass(slots=True)
class RequestRecord:
    """An inbound request as received, plus what the hub decided before the commit."""

    received_at: datetime | str  # a str is stored as given (tests, imports)
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]] | list[tuple[bytes, bytes]]  # bytes: as the ASGI scope has them
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
    # (platform, shop) as the metrics label them: "_unknown" for what is not ours
    labels: tuple[str, str] = ("_unknown", "_unknown")


@dataclass(slots=True)
class IngestResult:
    request_id: int
    outcome: str
    reason: str | None
    reply: Reply
    new_event_ids: list[int] = field(default_factory=list)
    # for the metrics of a request the writer judged (`Store.receive`)
    labels: tuple[str, str] = ("_unknown", "_unknown")
    forensics: str | None = None
    unknown: list[tuple[str, str]] = field(default_factory=list)  # (platform, type) of OTHER


# --- the wire: what the event loop sends the ingest writer process ---------------------
#
# Plain tuples of str/bytes/int/None, encoded with `marshal`: pickling the dataclasses
# costs ~65 µs a request (their slots' __getstate__ runs in Python, an aware datetime
# alone ~8 µs); these tuples take ~2 µs. Times travel as integer microseconds since the
# epoch (exact), and are formatted by the writer, off the event loop.
#
#   job    = (seq, submitted_monotonic, record, events, reply_status, reply_body)
#   record = (received_us or received_at text, channel, source, method, path, query, headers, body,
#             body_truncated, peer, platform, shop, outcome, reason, detail, forensics)
#   event  = (platform, shop, message_id, dedupe_key, kind, platform_type, order_id,
#             occurred_us, amount, currency, payload_json, source)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


def iso_from_us(us: int) -> str:
    """`iso_utc` of a time given in microseconds since the epoch."""
    seconds, micros = divmod(us, 1_000_000)
    head = _seconds.get(seconds)
    if head is None:
        # a batch's times fall in a few seconds, but not one: each push alternates its
        # receipt (now) and its event's time (earlier), so one cached second missed on
        # nearly every call
        if len(_seconds) >= 256:
            _seconds.clear()
        head = _seconds[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds))
    return f"{head}{micros:06d}Z"


_seconds: dict[int, str] = {}  # whole second -> its formatted text, up to the fraction


def to_wire(seq: int, submitted: float, job: IngestJob) -> tuple[object, ...]:
    """The job as the writer process receives it (raises if an event cannot be encoded:
    a connector bug, recorded as `internal_error` by the caller)."""
    rec = job.record
    events = [
        (
            e.platform,
            e.shop,
            e.message_id,
            e.dedupe_key,
            e.kind.value,
            e.platform_type,
            e.order_id,
            to_us(e.occurred_at),
            None if e.amount is None else str(e.amount),
            e.currency,
            e.payload_json(),
            e.source,
        )
        for e in job.events
    ]
    return (
        seq,
        submitted,
        (
            rec.received_at if isinstance(rec.received_at, str) else to_us(rec.received_at),
            rec.channel,
            rec.source,
            rec.method,
            rec.path,
            rec.query,
            rec.headers,
            rec.body,
            rec.body_truncated,
            rec.peer,
            rec.platform,
            rec.shop,
            rec.outcome,
            rec.reason,
            rec.detail,
            rec.forensics,
        ),
        events,
        job.reply.status,
        job.reply.body,
    )


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
        "payloads",
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
        self.payloads: dict[str, str] = {}  # payload of each key the batch added

    def payload_of(self, conn: sqlite3.Connection, key: str) -> str | None:
        """The stored (or batched) payload text behind `key`: the rare conflict check."""
        if key in self.payloads:
            return self.payloads[key]
        row = conn.execute("SELECT payload FROM events WHERE dedupe_key = ?", (key,)).fetchone()
        return None if row is None else row[0]

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


def prefetch(conn: sqlite3.Connection, ctx: BatchContext, jobs: list[tuple]) -> None:  # type: ignore[type-arg]
    """Look up every dedupe key of the batch's (wire) jobs in one query."""
    keys = [event[3] for job in jobs for event in job[3]]
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


def ingest(conn: sqlite3.Connection, ctx: BatchContext, job: tuple) -> Outcome:  # type: ignore[type-arg]
    """Record one wire job (see `to_wire`) in the batch; its outcome for the event loop."""
    rec, events = job[2], job[3]
    request_id = ctx.take_request_id()
    outcome, reason, detail = rec[12], rec[13], rec[14]
    new_ids: list[int] = []
    status, body = job[4], job[5]
    if events:
        first_id = ctx.next_event_id
        added: list[str] = []
        rows: list[tuple[object, ...]] = []
        conflict: str | None = None
        for (
            platform,
            shop,
            message_id,
            key,
            kind,
            ptype,
            order_id,
            occurred,
            amount,
            currency,
            payload,
            source,
        ) in events:
            sha = _sha(payload)
            stored = ctx.stored(conn, key)
            if stored is None:
                event_id = ctx.next_event_id
                ctx.next_event_id += 1
                ctx.keys[key] = (sha, request_id, message_id)
                ctx.payloads[key] = payload
                added.append(key)
                new_ids.append(event_id)
                rows.append(
                    (
                        event_id,
                        request_id,
                        platform,
                        shop,
                        message_id,
                        key,
                        kind,
                        ptype,
                        order_id,
                        iso_from_us(occurred),
                        amount,
                        currency,
                        payload,
                        sha,
                        source,
                        ctx.now,
                    )
                )
            # only the SAME platform message id with another body is a reuse: with a
            # content key (channels, reconciliation) two messages may describe the same
            # change, and that is a duplicate
            elif (
                message_id is not None
                and key.startswith("m:")
                and stored[2] == message_id
                and stored[0] != sha
                and not _same_json(ctx.payload_of(conn, key), payload)
            ):
                conflict = (
                    f"message id {message_id!r} was already delivered with a "
                    f"different body (request {stored[1]})"
                )
                break
        if conflict is not None:
            for key in added:  # none of this request's events are kept
                del ctx.keys[key]
            ctx.next_event_id = first_id
            new_ids = []
            outcome, reason, detail = "rejected", "message_id_reused", conflict
            # the event loop answers in the connector's shape and stores that answer
            status, body = 409, CONFLICT_BODY
        else:
            ctx.events.extend(rows)
            outcome = "accepted" if new_ids else "duplicate"
            if not new_ids:
                reason = "duplicate"
        if new_ids:
            ctx.max_new_event_id = max(ctx.max_new_event_id, new_ids[-1])
    ctx.requests.append(
        _request_row(
            request_id, rec, outcome, reason, detail, status, body, len(new_ids), len(events)
        )
    )
    return (job[0], request_id, outcome, reason, detail, new_ids)


def fallback(
    conn: sqlite3.Connection, ctx: BatchContext, error: BaseException, job: tuple
) -> Outcome:  # type: ignore[type-arg]
    """The job failed on its own: keep the request, without events, as an internal error."""
    request_id = ctx.take_request_id()
    detail = f"{type(error).__name__}: {error}"[:500]
    row = _request_row(
        request_id,
        job[2],
        "error",
        "internal_error",
        detail,
        500,
        INTERNAL_ERROR_BODY,
        0,
        len(job[3]),
    )
    ctx.requests.append(row)
    return (job[0], request_id, "error", "internal_error", detail, [])


# (seq, request_id, outcome, reason, detail, new event ids): the writer's answer per job
Outcome = tuple[int, int, str, "str | None", "str | None", list[int]]

CONFLICT_BODY = b'{"error":{"reason":"message_id_reused"}}'
INTERNAL_ERROR_BODY = b'{"error":{"reason":"internal_error"}}'


def _request_row(
    request_id: int,
    rec: tuple,  # type: ignore[type-arg]
    outcome: str,
    reason: str | None,
    detail: str | None,
    status: int,
    body: bytes,
    events_new: int,
    events_total: int,
) -> tuple[object, ...]:
    received = rec[0]
    return (
        request_id,
        received if isinstance(received, str) else iso_from_us(received),
        rec[1],
        rec[2],
        rec[3],
        rec[4],
        rec[5],
        headers_json(rec[6]),
        rec[7],
        int(rec[8]),
        rec[9],
        rec[10],
        rec[11],
        outcome,
        reason,
        detail,
        rec[15],
        events_new,
        events_total,
        status,
        body,
    )


_encode = json.JSONEncoder(ensure_ascii=False).encode  # built once, not per request
_ESCAPED = re.compile(r"[\x00-\x1f\\]")  # what the encoder escapes, besides quotes


def headers_json(headers: list) -> str:  # type: ignore[type-arg]
    """The headers as stored: `json.dumps(pairs, ensure_ascii=False)` of the (name, value)
    pairs as text (bytes as latin-1), built by joining them when nothing in them needs
    escaping, as nearly always: the encoder was 5% of the writer's CPU (bench.writer)."""
    if not headers:
        return "[]"
    try:
        if isinstance(headers[0][0], bytes):
            inner = b'"], ["'.join([b'", "'.join(pair) for pair in headers]).decode("latin-1")
        else:
            inner = '"], ["'.join(['", "'.join(pair) for pair in headers])
    except TypeError:  # not pairs of bytes or of text: the encoder says what they are
        return _encode(_text_headers(headers))
    # the joins put 4 quotes per pair, less the 2 outermost; any other quote, a
    # backslash, a control character or a pair that is not a pair takes the encoder
    if inner.count('"') == 4 * len(headers) - 2 and not _ESCAPED.search(inner):
        return '[["' + inner + '"]]'
    return _encode(_text_headers(headers))


def _text_headers(headers: list) -> list:  # type: ignore[type-arg]
    return [[x.decode("latin-1") if isinstance(x, bytes) else x for x in pair] for pair in headers]


def set_response(conn: sqlite3.Connection, request_id: int, status: int, body: bytes) -> None:
    """The answer actually sent, when the event loop shaped it after the commit (a
    conflict answered in the connector's own format)."""
    conn.execute(
        "UPDATE requests SET response_status = ?, response_body = ? WHERE id = ?",
        (status, body, request_id),
    )


def _same_json(a: str | None, b: str) -> bool:
    """Two payload texts that differ as bytes but hold the same JSON (a sender that
    re-serialised its message) are the same message."""
    if a is None:
        return False
    try:
        return canonical_json(json.loads(a)) == canonical_json(json.loads(b))
    except ValueError:
        return False


def flush(conn: sqlite3.Connection, ctx: BatchContext) -> None:
    """Write the transaction's event and request rows; the writer calls this right
    before COMMIT."""
    events, ctx.events = ctx.events, []
    requests, ctx.requests = ctx.requests, []
    insert_many(conn, INSERT_EVENTS, events)
    insert_many(conn, INSERT_REQUESTS, requests)


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
