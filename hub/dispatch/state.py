"""The dispatch config a running hub uses, and its hot reload.

The config file is watched (its size and mtime, checked every `reload_seconds`); it is
read once it has held still for one check, so a file caught half-written is not judged.
A good edit replaces the rules at once and re-syncs operators; a bad one keeps the old rules
running and says why: in the log, in `dispatch_log` (decision `rules_rejected`) and on
the board, until a good edit clears it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hub import settings as settings_mod
from hub.dispatch import assign
from hub.dispatch.config import DispatchConfig
from hub.model import iso_utc, utcnow
from hub.store import dispatch_sql

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("orderhook.dispatch")


class Pulse:
    """Wakes whoever waits (the board's event streams) after a dispatch change."""

    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()

    def beat(self) -> None:
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seen: int, timeout: float) -> int:
        if self.version == seen:
            event = self._event
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # wait_for can swallow a cancel on 3.11
                    await event.wait()
        return self.version


@dataclass
class DispatchState:
    config: DispatchConfig
    loaded_at: str
    error: str | None = None
    error_at: str | None = None
    signature: tuple[int, int] | None = None
    settling: tuple[int, int] | None = None  # seen changed once; loaded when it holds still
    pulse: Pulse = field(default_factory=Pulse)


_states: weakref.WeakKeyDictionary[Hub, DispatchState] = weakref.WeakKeyDictionary()


def of(hub: Hub) -> DispatchState:
    state = _states.get(hub)
    if state is None:
        config = hub.settings.sections.get("dispatch") or DispatchConfig()
        state = DispatchState(config, iso_utc(utcnow()), signature=_signature(hub))
        _states[hub] = state
    return state


def _signature(hub: Hub) -> tuple[int, int] | None:
    source = hub.settings.source
    try:
        stat = os.stat(source) if source else None
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size) if stat else None


def sync(conn: sqlite3.Connection, config: DispatchConfig) -> None:
    """Operators as configured, then hand out whatever the change made possible."""
    now = iso_utc(utcnow())
    dispatch_sql.sync_operators(
        conn,
        [(o.name, list(o.groups), o.capacity, o.status) for o in config.operators.values()],
        now,
    )
    assign.hand_out(conn, config, now)


async def reload_if_changed(hub: Hub) -> bool | None:
    """Reload when the file changed: True loaded, False rejected, None unchanged."""
    state = of(hub)
    signature = _signature(hub)
    if signature is None or signature == state.signature:
        state.settling = None
        return None
    if signature != state.settling:
        # an editor may still be writing the file: read it once it stops changing
        state.settling = signature
        return None
    state.signature, state.settling = signature, None
    now = iso_utc(utcnow())
    try:
        fresh = settings_mod.load(hub.settings.source)
    except settings_mod.ConfigError as exc:
        state.error, state.error_at = str(exc), now
        log.error("config change rejected, the previous rules stay in force: %s", exc)
        await hub.store.write(
            functools.partial(dispatch_sql.log, decision="rules_rejected", now=now, detail=str(exc))
        )
        state.pulse.beat()
        return False
    config = fresh.sections.get("dispatch") or DispatchConfig()
    state.config, state.loaded_at, state.error, state.error_at = config, now, None, None
    log.info("dispatch config reloaded: %d rules, %d groups", len(config.rules), len(config.groups))

    def apply(conn: sqlite3.Connection) -> None:
        dispatch_sql.log(
            conn,
            "rules_reloaded",
            now,
            detail=f"{len(config.rules)} rules, {len(config.groups)} groups, "
            f"{len(config.operators)} operators from {hub.settings.source}",
        )
        sync(conn, config)

    await hub.store.write(apply)
    state.pulse.beat()
    return True
