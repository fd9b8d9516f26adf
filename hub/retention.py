"""Retention: raw requests older than `hub.retention_days` are dropped, hourly.

Events and orders stay: they are the business record; the raw bytes are evidence with
a shelf life set by the merchant.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

from hub.model import iso_utc, utcnow
from hub.store import queries

if TYPE_CHECKING:
    from hub.runtime import Hub

INTERVAL_SECONDS = 3600


def cutoff(days: int) -> str:
    return iso_utc(utcnow() - timedelta(days=days))


async def run(hub: Hub) -> None:
    while True:
        await hub.store.write(queries.prune_requests, cutoff(hub.settings.retention_days))
        await asyncio.sleep(INTERVAL_SECONDS)
