"""The running hub: settings, store, metrics and the background stages, started together.

    hub = Hub(settings)
    async with hub.running():   # store (ingest writer process, writer thread) + stages
        ...                     # serve hub.app

Background stages are `async def run(hub)` coroutines listed in SERVICES; each one
reads durable state (cursors, timestamps), so stopping one anywhere loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from hub import channels, reconcile, retention, tlswatch
from hub.delivery import fanout, worker
from hub.dispatch import service as dispatch
from hub.ingest import Shedding
from hub.metrics import Metrics
from hub.settings import Settings
from hub.store import Store

log = logging.getLogger("orderhook")

Service = Callable[["Hub"], Awaitable[None]]

SERVICES: list[Service] = [
    dispatch.run,
    dispatch.run_escalation,
    dispatch.watch_config,
    retention.run,
    reconcile.run,
    channels.run,
    fanout.run,
    worker.run,
    tlswatch.run,
]


# what the store's worker processes load before their first job: the connector registry
# (the ingest writer judges pushes with it, the stages read facts with it) and the module
# of the functions the stages offload (`Store.offload`)
PRELOAD = ("connectors:names", "hub.dispatch.engine")
# what the ingest writer judges each received push with (verify, parse, the reply)
ADMIT = "hub.ingest:admit"


class Hub:
    def __init__(self, settings: Settings, *, services: list[Service] | None = None) -> None:
        self.settings = settings
        self.services = list(SERVICES if services is None else services)
        # the stage runner starts with the store only for a hub whose stages offload
        offloads = dispatch.run in self.services
        self.store = Store(settings.db, preload=PRELOAD, admit=ADMIT, stages=offloads)
        self.metrics = Metrics()
        self.shedding = Shedding()  # the ingest route's overload state, for the board
        self.store.batch_listeners.append(self.metrics.observe_batch)
        self.metrics.watch_workers(self.store.workers_cpu)
        self._tasks: list[asyncio.Task[None]] = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Hub]:
        await self.store.start()
        self._tasks = [
            asyncio.create_task(self._supervise(service), name=getattr(service, "__module__", ""))
            for service in self.services
        ]
        try:
            yield self
        finally:
            for task in self._tasks:
                task.cancel()
            # a stage that ignores its cancellation must not keep the writer (and every
            # committed-but-unflushed timing) from closing
            _, stuck = await asyncio.wait(self._tasks, timeout=10) if self._tasks else ((), ())
            for task in stuck:
                log.error("stage %s did not stop within 10 s", task.get_name())
            await self.store.stop()

    async def _supervise(self, service: Service) -> None:
        """Keep a stage running: a crash is logged and the stage restarted after a pause."""
        while True:
            try:
                await service(self)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("stage %s crashed; restarting in 1 s", service.__module__)
                await asyncio.sleep(1.0)
