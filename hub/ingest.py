"""`POST /webhooks/{platform}/{shop}[/platform's own tail]`: the hot path, as raw ASGI.

Read top to bottom, one push:
1. `Ingest.__call__`, on the event loop: read the body (size-capped) and capture method,
   path, query, headers, peer and time exactly as they arrived (a `Received` tuple);
2. hand it to the store's ingest writer, a process of its own, where `admit` finds the
   connector and the shop, verifies and parses into canonical events (`judge`);
3. the writer records the request in every case, dedupes the events on their UNIQUE
   key, decides the outcome (accepted, duplicate, rejected) and group-commits;
4. only after that commit, the event loop answers with the reply decided in 2, in the
   platform's own shape.

Why the judging happens in the writer: the event loop's time per request is what caps
throughput (it also runs the HTTP server), and verify + parse + the record's objects
were a third of it. The writer is on the other core and waits on the disk anyway.

A sender's mistake is a 4xx with a machine-readable reason and is recorded like any
other request; our own bug is recorded as `internal_error` (500); a failing disk is a
503 so the platform retries. Above what the writer can commit, pushes are shed: while
the oldest one waiting for its commit has waited more than `hub.shed_after_ms`, a new
one is answered 503 at once and not recorded (the platform still holds it and sends it
again; docs/configuration.md, "Overload"). Nothing here builds SQL or names a platform.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import connectors
from connectors.base import Connector, Inbound, Rejection, Reply, generic_error
from hub.model import iso_utc, utcnow
from hub.store import IngestJob, IngestResult, RequestRecord

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from hub.runtime import Hub
    from hub.settings import Settings, Shop

log = logging.getLogger("orderhook.ingest")


# (received µs since the epoch, method, path, query bytes, headers as the ASGI scope has
# them, body, peer, body truncated): a request as it arrived, in plain values the store
# sends to its writer without pickling
Received = tuple[int, str, str, bytes, list[tuple[bytes, bytes]], bytes, "str | None", bool]


class Ingest:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.store = hub.store
        self.metrics = hub.metrics
        self.cap = hub.settings.max_body_bytes
        # prometheus' labels() validates and locks on every call; the label sets are few
        # (known platforms and shops, a fixed set of outcomes), so keep their children
        self._counted: dict[tuple[str, str, str, str], Any] = {}
        self._timed: dict[str, Any] = {}
        self._starts: dict[tuple[Any, ...], dict[str, Any]] = {}
        # overload: pushes are answered 503 at once, unrecorded (the platform sends them
        # again), while the oldest one waiting for its commit has waited this long
        self.shed_after = hub.settings.shed_after_ms / 1000
        self.shedding = hub.shedding
        self._refusals: dict[tuple[str, str], Reply] = {}

    def _start(self, reply: Reply) -> dict[str, Any]:
        """The response start for `reply`, built once per shape (status, type, headers,
        length): replies are mostly a connector's same ack again and again."""
        key = (reply.status, reply.content_type, reply.headers, len(reply.body))
        start = self._starts.get(key)
        if start is None:
            start = {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", reply.content_type.encode()),
                    (b"content-length", str(len(reply.body)).encode()),
                    *((k.encode(), v.encode()) for k, v in reply.headers),
                ],
            }
            if len(self._starts) >= 256:  # one-off replies (rejections) filled it
                self._starts.clear()
            self._starts[key] = start
        return start

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        received_us = time.time_ns() // 1000
        raw_headers = scope["headers"]
        declared = None
        for name, value in raw_headers:
            if name == b"content-length":
                declared = value
        body, truncated = await _read_body(receive, declared, self.cap)
        path: str = scope["path"]
        if self.shed_after and self.store.ingest_waited() > self.shed_after:
            result = self._shed(path)
        else:
            if self.shedding.over():
                self._caught_up()
            client = scope.get("client")
            received: Received = (
                received_us,
                scope["method"],
                path,
                scope["query_string"],
                raw_headers,
                body,
                f"{client[0]}:{client[1]}" if client else None,
                truncated,
            )
            try:
                result = await self.store.receive(received, self.hub.settings)
            except Exception:
                log.exception("store failed to record %s", path)
                result = self._refuse(path, "store_unavailable")
        reply = result.reply
        await send(self._start(reply))
        await send({"type": "http.response.body", "body": reply.body})
        self._observe(result, time.perf_counter() - t0)

    def _refuse(self, path: str, reason: str) -> IngestResult:
        """A 503 the platform retries on, in its own shape when the path names one: the
        hub is overloaded (not recorded) or its store failed (logged by the caller)."""
        platform, shop_name, _ = route(path)
        connector = connectors.get(platform)
        reply = self._refusals.get((platform, reason)) if connector else None
        if reply is None:
            shaped = failure(connector, None, reason, 503)
            headers = (*shaped.headers, ("retry-after", "1"))
            reply = Reply(shaped.status, shaped.body, shaped.content_type, headers)
            if connector:
                self._refusals[platform, reason] = reply
        result = IngestResult(0, "shed" if reason == "overloaded" else "error", reason, reply)
        shop = self.hub.settings.shops.get(shop_name)
        result.labels = labels(platform, shop_name, connector, shop)
        return result

    def _shed(self, path: str) -> IngestResult:
        if not self.shedding.active:
            log.warning(
                "ingest overloaded: the oldest push has waited %.1f s for its commit "
                "(hub.shed_after_ms = %d); answering 503 until it catches up",
                self.store.ingest_waited(),
                self.shed_after * 1000,
            )
        self.shedding.add()
        return self._refuse(path, "overloaded")

    def _caught_up(self) -> None:
        shed, seconds = self.shedding.end()
        log.warning(
            "ingest caught up: %d push(es) were answered 503 over %.1f s, for their "
            "platforms to send again",
            shed,
            seconds,
        )

    def _observe(self, result: IngestResult, took: float) -> None:
        m = self.metrics
        platform, shop = result.labels
        key = (platform, shop, result.outcome, result.reason or "")
        counted = self._counted.get(key)
        if counted is None:
            counted = self._counted[key] = m.requests.labels(*key)
        counted.inc()
        timed = self._timed.get(platform)
        if timed is None:
            timed = self._timed[platform] = m.ack_seconds.labels(platform)
        timed.observe(took)
        if result.forensics:
            m.forensics.labels(platform, result.forensics.split(":", 1)[0][:64]).inc()
        for event_platform, platform_type in result.unknown:
            m.events_unknown.labels(event_platform, platform_type[:64]).inc()


@dataclass
class Shedding:
    """Overload as the board and the log tell it: pushes answered 503 unrecorded
    (`hub.shed_after_ms`). An episode ends once pushes have been taken for `quiet`
    seconds without one shed: under a sustained overload the hub sheds in bursts a few
    tenths of a second apart, which is one episode to a person, not one per burst."""

    active: bool = False
    since: str | None = None  # when the current (or last) episode began
    ended: str | None = None
    count: int = 0  # answered 503 in the current (or last) episode
    total: int = 0  # since the hub started
    quiet: float = 10.0
    _started: float = 0.0
    _last: float = 0.0

    def add(self) -> None:
        self._last = time.monotonic()
        if not self.active:
            self.active, self.since, self.ended, self.count = True, iso_utc(utcnow()), None, 0
            self._started = self._last
        self.count += 1
        self.total += 1

    def over(self) -> bool:
        """The episode in progress has had its quiet time (a push is being taken)."""
        return self.active and time.monotonic() - self._last >= self.quiet

    def end(self) -> tuple[int, float]:
        """(pushes shed, seconds from the first to the last) of the episode that ends."""
        self.active, self.ended = False, iso_utc(utcnow())
        return self.count, self._last - self._started

    def view(self) -> dict[str, object]:
        return {
            "active": self.active,
            "since": self.since,
            "ended": self.ended,
            "count": self.count,
            "total": self.total,
        }


def route(path: str) -> tuple[str, str, str]:
    """(platform, shop, the platform's own tail) of `/webhooks/{platform}/{shop}[/tail]`."""
    parts = path.split("/", 4)  # "", "webhooks", platform, shop, tail
    platform = parts[2][:64] if len(parts) > 2 else ""
    shop_name = parts[3][:64] if len(parts) > 3 else ""
    return platform, shop_name, ("/" + parts[4] if len(parts) > 4 else "")


# --- in the ingest writer process ------------------------------------------------------


def admit(settings: Settings, received: Received) -> IngestJob:
    """What the hub makes of a received request: the record it keeps in every case, the
    events it carries, the reply (ack or rejection). Runs in the ingest writer."""
    received_us, method, path, query_raw, raw_headers, body, peer, truncated = received
    received_at = datetime.fromtimestamp(received_us / 1e6, UTC)
    platform, shop_name, tail = route(path)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw_headers}
    # the record keeps every header in order, repeated ones too: as the bytes came (the
    # store writes their JSON from the bytes, without decoding each pair again)
    query = query_raw.decode("latin-1")
    record = RequestRecord(
        received_at=received_at,
        method=method,
        path=path,
        query=query,
        headers=raw_headers,
        body=body,
        peer=peer,
        platform=platform or None,
        shop=shop_name or None,
        body_truncated=truncated,
    )
    connector = connectors.get(platform)
    shop = settings.shops.get(shop_name)
    msg: Inbound | None = None
    try:
        if connector is None:
            raise Rejection(
                "unknown_platform",
                f"no connector {platform!r} (known: {', '.join(connectors.names())})",
                status=404,
            )
        if method != "POST":
            raise Rejection("method_not_allowed", "platforms push with POST", status=405)
        if truncated:
            raise Rejection(
                "body_too_large", f"body exceeds {settings.max_body_bytes} bytes", status=413
            )
        if shop is None or shop.platform != platform:
            raise Rejection(
                "unknown_shop", f"no shop {shop_name!r} on platform {platform!r}", status=404
            )
        content_type = headers.get("content-type", "")
        msg = Inbound(
            platform=platform,
            shop=shop,
            method="POST",
            path=path,
            tail=tail,
            query=query,
            headers=headers,
            body=body,
            received_at=received_at,
            content_type=content_type,
            peers=peers(settings, shop),
        )
        _check_content_type(connector, content_type)
    except Rejection as rejection:
        reply = connector.reject(msg, rejection) if connector else generic_error(rejection)
        job = refused(record, rejection, reply)
    else:
        job = judge(connector, msg, record)
    job.labels = labels(platform, shop_name, connector, shop)
    return job


def labels(
    platform: str, shop_name: str, connector: Connector | None, shop: Shop | None
) -> tuple[str, str]:
    """A push's metrics labels, here and for a 503 the event loop answers without the
    writer (`Ingest._refuse`): `_unknown` for what the hub does not know, a shop of
    another platform included, as its refusal (unknown_shop) says."""
    return (
        platform if connector else "_unknown",
        shop_name if shop is not None and shop.platform == platform else "_unknown",
    )


_peers: dict[str, tuple[Shop, ...]] = {}
_peers_from: list[Settings | None] = [None]


def peers(settings: Settings, shop: Shop) -> tuple[Shop, ...]:
    """The other shops of the shop's platform (forensics), computed once per settings."""
    if _peers_from[0] is not settings:  # first call, or the config was reloaded
        by_platform: dict[str, list[Shop]] = {}
        for each in settings.shops.values():
            by_platform.setdefault(each.platform, []).append(each)
        _peers.clear()
        _peers.update(
            (each.name, tuple(p for p in by_platform[each.platform] if p is not each))
            for each in settings.shops.values()
        )
        _peers_from[0] = settings
    return _peers.get(shop.name, ())


def judge(connector: Connector, msg: Inbound, record: RequestRecord) -> IngestJob:
    """Verify and parse one received message (an HTTP push or a channel message) into the
    job the store commits: its events and the ack, or the rejection and its reply."""
    try:
        connector.verify(msg)
        events = connector.parse(msg)
        return IngestJob(record, events, connector.ack(msg), _conflict_reply(connector, msg))
    except Rejection as rejection:
        return refused(record, rejection, connector.reject(msg, rejection))
    except Exception as exc:  # our bug, not the sender's: keep the message anyway
        log.exception("connector %s failed on %s", msg.platform, msg.path)
        record.outcome, record.reason = "error", "internal_error"
        record.detail = f"{type(exc).__name__}: {exc}"[:500]
        return IngestJob(record, [], failure(connector, msg, "internal_error", 500))


def refused(record: RequestRecord, rejection: Rejection, reply: Reply) -> IngestJob:
    """The job for a message the hub will not take: recorded with its reason, no events."""
    record.outcome, record.reason = "rejected", rejection.reason
    record.detail, record.forensics = rejection.detail or None, rejection.forensics
    return IngestJob(record, [], reply)


def _check_content_type(connector: Connector, content_type: str) -> None:
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in connector.content_types:
        raise Rejection(
            "unsupported_media_type",
            f"content-type {media or '(none)'!r}; expected {' or '.join(connector.content_types)}",
            status=415,
        )


def failure(connector: Connector | None, msg: Inbound | None, reason: str, status: int) -> Reply:
    """Our own failure, answered in the platform's shape when we can (so a platform that
    retries on its own error code, like JD Daojia's -10000, does retry)."""
    fallback = Reply(status, b'{"error":{"reason":"%s"}}' % reason.encode())
    if connector is None:
        return fallback
    try:
        return connector.reject(msg, Rejection(reason, status=status))
    except Exception:
        log.exception("connector %s failed to build its error reply", connector.name)
        return fallback


def _conflict_reply(connector: Connector, msg: Inbound):  # type: ignore[no-untyped-def]
    return lambda rejection: connector.reject(msg, rejection)


async def _read_body(receive: Receive, declared: bytes | None, cap: int) -> tuple[bytes, bool]:
    """The body, or its first `cap` bytes and True when it is larger than the cap."""
    if declared is not None and declared.isdigit() and int(declared) > cap:
        return b"", True  # refuse without reading megabytes we will not keep
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # client went away mid-body
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > cap:
                chunks.append(chunk[: cap - (size - len(chunk))])
                return b"".join(chunks), True
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), False
