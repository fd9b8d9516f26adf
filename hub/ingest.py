"""`POST /webhooks/{platform}/{shop}[/platform's own tail]`: the hot path, as raw ASGI.

Read top to bottom, one push:
1. read the body (size-capped) and capture method, path, query, headers, peer, time;
2. find the connector and the shop; verify; parse into canonical events;
3. hand the request and its events to the store's group commit, which records the
   request in every case, dedupes the events on their UNIQUE key and decides the
   outcome (accepted, duplicate, rejected);
4. only after that commit, answer in the platform's own shape.

A sender's mistake is a 4xx with a machine-readable reason and is recorded like any
other request; our own bug is recorded as `internal_error` (500); a failing disk is a
503 so the platform retries. Nothing here builds SQL or names a platform.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import connectors
from connectors.base import Connector, Inbound, Rejection, Reply, generic_error
from hub.model import Kind, utcnow
from hub.store import IngestJob, RequestRecord

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from hub.runtime import Hub
    from hub.settings import Settings, Shop

log = logging.getLogger("orderhook.ingest")

UNAVAILABLE = Reply(503, b'{"error":{"reason":"store_unavailable"}}')
INTERNAL_ERROR = Reply(500, b'{"error":{"reason":"internal_error"}}')


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
        self._peers_of: dict[str, tuple[Shop, ...]] = {}
        self._peers_from: Settings | None = None
        self._starts: dict[int, tuple[Reply, dict[str, Any]]] = {}

    def _start(self, reply: Reply) -> dict[str, Any]:
        """The response start for `reply`; kept for the few replies that are the same
        object every time (a connector's ack), built afresh for the others."""
        held = self._starts.get(id(reply))
        if held is not None and held[0] is reply:
            return held[1]
        start = {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [
                (b"content-type", reply.content_type.encode()),
                (b"content-length", str(len(reply.body)).encode()),
                *((k.encode(), v.encode()) for k, v in reply.headers),
            ],
        }
        if len(self._starts) >= 64:  # one-off replies (rejections) filled it: start over
            self._starts.clear()
        self._starts[id(reply)] = (reply, start)  # held, so its id cannot be reused
        return start

    def peers(self, shop: Shop) -> tuple[Shop, ...]:
        """The other shops of the shop's platform (forensics), computed once per settings."""
        settings = self.hub.settings
        if self._peers_from is not settings:  # first call, or the config was reloaded
            by_platform: dict[str, list[Shop]] = {}
            for each in settings.shops.values():
                by_platform.setdefault(each.platform, []).append(each)
            self._peers_of = {
                each.name: tuple(p for p in by_platform[each.platform] if p is not each)
                for each in settings.shops.values()
            }
            self._peers_from = settings
        return self._peers_of.get(shop.name, ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        received_at = utcnow()
        path: str = scope["path"]
        parts = path.split("/", 4)  # "", "webhooks", platform, shop, tail
        platform = parts[2][:64] if len(parts) > 2 else ""
        shop_name = parts[3][:64] if len(parts) > 3 else ""
        tail = "/" + parts[4] if len(parts) > 4 else ""
        raw_headers = scope["headers"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw_headers}
        # the record keeps every header in order, repeated ones too: the decoded pairs
        # when no name repeats (the usual case, nothing to redo), else the raw bytes
        # for the writer to decode
        kept = list(headers.items()) if len(headers) == len(raw_headers) else raw_headers
        body, truncated = await _read_body(receive, headers.get("content-length"), self.cap)
        client = scope.get("client")
        record = RequestRecord(
            received_at=received_at,
            method=scope["method"],
            path=path,
            query=scope["query_string"].decode("latin-1"),
            headers=kept,
            body=body,
            peer=f"{client[0]}:{client[1]}" if client else None,
            platform=platform or None,
            shop=shop_name or None,
            body_truncated=truncated,
        )
        connector = connectors.get(platform)
        shop = self.hub.settings.shops.get(shop_name)
        msg: Inbound | None = None
        try:
            if connector is None:
                raise Rejection(
                    "unknown_platform",
                    f"no connector {platform!r} (known: {', '.join(connectors.names())})",
                    status=404,
                )
            if scope["method"] != "POST":
                raise Rejection("method_not_allowed", "platforms push with POST", status=405)
            if truncated:
                raise Rejection("body_too_large", f"body exceeds {self.cap} bytes", status=413)
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
                query=record.query,
                headers=headers,
                body=body,
                received_at=received_at,
                content_type=content_type,
                peers=self.peers(shop),
            )
            _check_content_type(connector, content_type)
        except Rejection as rejection:
            reply = connector.reject(msg, rejection) if connector else generic_error(rejection)
            job = refused(record, rejection, reply)
        else:
            assert connector is not None and msg is not None
            job = judge(connector, msg, record)
        try:
            result = await self.store.ingest(job)
            reply, outcome, reason = result.reply, result.outcome, result.reason
        except Exception:
            log.exception("store failed to record %s", path)
            reply = failure(connector, msg, "store_unavailable", 503)
            outcome, reason = "error", "store_unavailable"
        await send(self._start(reply))
        await send({"type": "http.response.body", "body": reply.body})
        m = self.metrics
        label_platform = platform if connector else "_unknown"
        label_shop = shop_name if shop is not None else "_unknown"
        key = (label_platform, label_shop, outcome, reason or "")
        counted = self._counted.get(key)
        if counted is None:
            counted = self._counted[key] = m.requests.labels(*key)
        counted.inc()
        timed = self._timed.get(label_platform)
        if timed is None:
            timed = self._timed[label_platform] = m.ack_seconds.labels(label_platform)
        timed.observe(time.perf_counter() - t0)
        if record.forensics:
            match = record.forensics.split(":", 1)[0][:64]
            m.forensics.labels(label_platform, match).inc()
        for event in job.events:
            if event.kind is Kind.OTHER:
                m.events_unknown.labels(event.platform, event.platform_type[:64]).inc()


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
    fallback = UNAVAILABLE if status == 503 else INTERNAL_ERROR
    if connector is None:
        return fallback
    try:
        return connector.reject(msg, Rejection(reason, status=status))
    except Exception:
        log.exception("connector %s failed to build its error reply", connector.name)
        return fallback


def _conflict_reply(connector: Connector, msg: Inbound):  # type: ignore[no-untyped-def]
    return lambda rejection: connector.reject(msg, rejection)


async def _read_body(receive: Receive, declared: str | None, cap: int) -> tuple[bytes, bool]:
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
