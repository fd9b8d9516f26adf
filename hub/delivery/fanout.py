"""Post-commit stage: turn each new canonical event into outbox rows for the
subscriptions that match it, in the same transaction as the cursor move — so an event
is queued for every subscriber exactly once, whatever crashes when (the rows' dedupe
key `sub:{id}:event:{id}` makes even a replayed batch harmless).

The body is built here, once, and stored: every retry sends the same bytes.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import TYPE_CHECKING, Any, NamedTuple

from hub.delivery import signals
from hub.store import delivery_sql, ingest_sql, queries
from hub.store.outbox_sql import enqueue

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("orderhook.delivery")

STAGE = "delivery.subscriptions"
BATCH = 500
# While nobody subscribes, the stage only steps its cursor over what was committed. On
# every commit that was a write transaction and an fsync per ingest batch during a burst,
# each taking its turn before the ingest writer's next commit: ~5% of a burst's pushes
# per second (paired rounds, docs/performance.md). Once a second loses nothing: a
# subscription added meanwhile gets every event after its `from_event_id`, this much later.
UNSUBSCRIBED_EVERY = 1.0


def matches(sub: dict[str, Any], event: dict[str, Any]) -> bool:
    return (
        event["id"] > sub["from_event_id"]
        and (not sub["kinds"] or event["kind"] in sub["kinds"])
        and (not sub["platforms"] or event["platform"] in sub["platforms"])
        and (not sub["shops"] or event["shop"] in sub["shops"])
    )


def envelope(event: dict[str, Any], *, include_payload: bool) -> dict[str, Any]:
    """The Standard Webhooks payload shape: type, timestamp (of the event), data."""
    data = {
        "event_id": event["id"],
        "platform": event["platform"],
        "shop": event["shop"],
        "order_id": event["order_id"],
        "kind": event["kind"],
        "platform_type": event["platform_type"],
        "message_id": event["message_id"],
        "occurred_at": event["occurred_at"],
        "amount": event["amount"],  # text: exact decimal
        "currency": event["currency"],
        "source": event["source"],
    }
    if include_payload:
        data["payload"] = event["payload"]
    return {"type": f"order.{event['kind']}", "timestamp": event["occurred_at"], "data": data}


def order_key(event: dict[str, Any]) -> str:
    return f"{event['platform']}:{event['shop']}:{event['order_id']}"


class Fanned(NamedTuple):
    read: int  # events read past the cursor
    queued: int  # outbox rows queued for them
    subscribed: bool  # any active subscription


def fan_out(conn: sqlite3.Connection, limit: int = BATCH) -> Fanned:
    """Queue deliveries for up to `limit` events past the cursor."""
    after = queries.cursor(conn, STAGE)
    subscriptions = delivery_sql.active_subscriptions(conn)
    if not subscriptions:
        # nobody to deliver to: step over what is committed without reading it (each
        # read event would be parsed for nothing, on every commit of a burst); the
        # events are skipped exactly as they were when read and matched by nobody
        last = ingest_sql.max_event_id(conn)
        if last > after:
            queries.set_cursor(conn, STAGE, last)
        return Fanned(0, 0, subscribed=False)
    events = delivery_sql.events_for_fanout(conn, after, limit)
    if not events:
        return Fanned(0, 0, subscribed=True)
    queued = 0
    for event in events:
        for sub in subscriptions:
            if matches(sub, event):
                enqueue(
                    conn,
                    kind="subscription",
                    target=str(sub["id"]),
                    payload=envelope(event, include_payload=sub["include_payload"]),
                    order_key=order_key(event),
                    dedupe_key=f"sub:{sub['id']}:event:{event['id']}",
                )
                queued += 1
    queries.set_cursor(conn, STAGE, events[-1]["id"])
    return Fanned(len(events), queued, subscribed=True)


async def run(hub: Hub) -> None:
    """Fan out as commits announce new events (and every second, as a safety net)."""
    wake = asyncio.Event()
    hub.store.commit_listeners.append(lambda _max_id: wake.set())
    while True:
        subscribed = True
        try:
            while True:
                done = await hub.store.write(fan_out)
                subscribed = done.subscribed
                if done.queued:
                    signals.outbox_changed(hub).set()
                if done.read < BATCH:
                    break
        except Exception:
            log.exception("queueing subscription deliveries failed; retrying")
        wake.clear()
        if not subscribed:  # the commits meanwhile set `wake`: one step over them all
            await asyncio.sleep(UNSUBSCRIBED_EVERY)
        await signals.wait(wake, 1.0)
