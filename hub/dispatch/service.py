"""The dispatch stages a running hub keeps going (listed in hub.runtime.SERVICES).

- `run`: apply + route + assign after each commit (the store's commit listener wakes
  it; passes start at most every `PASS_GAP`, so a push is owned by somebody within
  ~50 ms), with a one-second safety net;
- `run_escalation`: scans stored timestamps every `escalation_scan_seconds`;
- `watch_config`: hot-reloads the [dispatch] rules when the config file changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from hub.dispatch import engine, escalate, state
from hub.model import parse_iso, utcnow
from hub.store import Shared, dispatch_sql

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("orderhook.dispatch")

# events per dispatch job. Batched, the stage costs ~0.15-0.25 ms an event (bench/stage.py:
# 200 rules, new paid orders), so a slice holds the write turn ~30-50 ms, and the ingest
# writer waits at most that for its next commit. Smaller slices would not help the
# acks much but starve the stage: under load each slice also waits for the ingest
# writer's turn (a commit or two), and with slices of 25 the stage worked off ~50-900
# events/s while 2,000/s came in (docs/dispatch.md, "The stage during a sustained burst").
BATCH = 200

# Acks first, but not acks only: while this many requests wait for their commit (the
# ingest writer is saturated), the stage works at most half the time, sleeping as long
# as its work took (the work alone: the time its slice waited for the write turn and
# for the event loop is not its share). It used to sleep twice the whole round trip,
# waits included, and then worked off ~100-250 events/s of a sustained 2,000/s: a peak
# left its orders unassigned until it ended. Platforms time out and retry when acks
# slow down (shedding bounds that: hub.shed_after_ms), while a routing backlog is
# worked off as the burst ebbs; nothing is lost either way, as the stage reads
# committed events through its cursor.
INGEST_SATURATED = 32

# A pass starts at most this long after the previous one started. Woken by every
# commit, the stage ran ~130 passes a second at a steady 1,000 pushes/s, ~8 events each,
# and a pass has a fixed cost (~20 statements, the hand-off, its transaction) that
# small slices repeat: at 500/s it spent ~1.1 ms of CPU per push. Letting events gather
# for up to 50 ms cut that to ~0.35 ms (~0.3 at 1,000/s, from ~0.53), and the acks got
# faster too, as the ingest writer waits for fewer write turns (p50 6 -> 2.4 ms at 500/s);
# push->assigned grows by what the events wait (p50 5 -> 27 ms): nobody sees 50 ms on
# an operator's screen, while the CPU is what a burst runs short of.
PASS_GAP = 0.05


async def run(hub: Hub) -> None:
    live = state.of(hub)
    wake = asyncio.Event()
    hub.store.commit_listeners.append(lambda _max_id: wake.set())
    await hub.store.write(state.sync, live.config)
    loop = asyncio.get_running_loop()
    started = -PASS_GAP
    while True:
        wake.clear()
        try:
            while True:
                if (wait := started + PASS_GAP - loop.time()) > 0:
                    await asyncio.sleep(wait)
                started = loop.time()
                result = await hub.store.offload(engine.process, Shared(live.config), BATCH)
                if result.applied or result.assigned:
                    counts = hub.metrics.dispatch_decisions
                    counts.labels("routed").inc(len(result.routed))
                    counts.labels("assigned").inc(len(result.assigned))
                    counts.labels("closed").inc(len(result.closed))
                    live.pulse.beat()
                if result.applied and hub.store.ingest_waiting() >= INGEST_SATURATED:
                    await asyncio.sleep(result.seconds)
                if result.applied < BATCH:
                    break
        except Exception:
            log.exception("dispatching committed events failed; retrying")
        # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancellation that arrives
        # as the wait ends (CPython gh-86296), and a stopping hub then waits for ever
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await wake.wait()


async def run_escalation(hub: Hub) -> None:
    live = state.of(hub)
    while True:
        try:
            escalated = await hub.store.write(escalate.escalate_due, live.config, utcnow())
            if escalated:
                hub.metrics.dispatch_decisions.labels("escalated").inc(len(escalated))
                live.pulse.beat()
            await _gauge_queues(hub)
        except Exception:
            log.exception("escalation scan failed; retrying")
        await asyncio.sleep(live.config.escalation_scan_seconds)


async def watch_config(hub: Hub) -> None:
    live = state.of(hub)
    while True:
        await asyncio.sleep(live.config.reload_seconds)
        try:
            await state.reload_if_changed(hub)
        except Exception:
            log.exception("checking the config file for changes failed")


async def _gauge_queues(hub: Hub) -> None:
    """Queue sizes and the oldest unclaimed age, for alerting from Prometheus."""
    now = utcnow()
    oldest: dict[str, float] = {name: 0.0 for name in state.of(hub).config.groups}
    waiting = hub.metrics.dispatch_waiting
    waiting.clear()
    for group, queue, count, since in await hub.store.read(dispatch_sql.waiting_by_group):
        waiting.labels(group, queue).set(count)
        age = (now - parse_iso(since)).total_seconds()
        oldest[group] = max(oldest.get(group, 0.0), age)
    for group, age in oldest.items():
        hub.metrics.dispatch_oldest.labels(group).set(age)
