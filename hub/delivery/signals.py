"""A per-hub "new outbox rows" signal, so the worker does not wait out its poll interval
after the fan-out, a shipment report or its own settle. Polling stays the safety net
(rows queued by other stages or processes are found within `poll_interval`)."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

_events: weakref.WeakKeyDictionary[Any, asyncio.Event] = weakref.WeakKeyDictionary()


async def wait(event: asyncio.Event, seconds: float) -> None:
    """Until the event is set or `seconds` pass. Not `asyncio.wait_for`: on Python 3.11 it
    swallows a cancellation that arrives as the event is set, and the stage then never
    stops (seen as a hang at shutdown)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


def outbox_changed(hub: Any) -> asyncio.Event:
    event = _events.get(hub)
    if event is None:
        event = _events[hub] = asyncio.Event()
    return event
