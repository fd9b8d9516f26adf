"""Retention, hourly: raw requests older than `hub.retention_days` and delivered outbox
rows older than `delivery.keep_done_days` are dropped.

Events and orders stay: they are the business record; the raw bytes are evidence with
a shelf life set by the merchant. Dead and parked outbox rows stay until someone deals
with them. Each prune goes in short steps (`Store.write_in_steps`): a month on, an hour
of a sale's pushes ages out at once, and acks must not wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from hub.delivery import config as delivery_config
from hub.model import iso_utc, utcnow
from hub.store import delivery_sql, queries

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("orderhook.retention")

INTERVAL_SECONDS = 3600


def cutoff(days: int) -> str:
    return iso_utc(utcnow() - timedelta(days=days))


async def prune(hub: Hub) -> tuple[int, int]:
    """Drop what has aged out; returns (raw requests, delivered outbox rows) dropped."""
    requests = await hub.store.write_in_steps(
        queries.prune_requests, cutoff(hub.settings.retention_days)
    )
    delivered = await hub.store.write_in_steps(
        delivery_sql.prune_done, cutoff(delivery_config.of(hub.settings).keep_done_days)
    )
    if requests or delivered:
        log.info(
            "retention dropped %d raw request(s) and %d delivered outbox row(s)",
            requests,
            delivered,
        )
    return requests, delivered


async def run(hub: Hub) -> None:
    while True:
        await prune(hub)
        await asyncio.sleep(INTERVAL_SECONDS)
