"""The ASGI application: the webhook hot path as raw ASGI, everything else Starlette.

`/webhooks/...` skips routing, middleware and Request objects entirely: it is the one
route that must keep up with a platform's peak, and it needs no token (platforms sign
their messages instead). Every other route goes through bearer-token auth.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from hub import api, board, channels, reconcile_api, stream
from hub.auth import TokenAuth
from hub.delivery import routes as delivery_routes
from hub.dispatch import api as dispatch_api
from hub.ingest import Ingest
from hub.metrics import CONTENT_TYPE_LATEST
from hub.runtime import Hub


class HubApp:
    def __init__(self, hub: Hub, *, lifespan: bool = True) -> None:
        self.hub = hub
        self.ingest = Ingest(hub)

        @contextlib.asynccontextmanager
        async def run_hub(_app: Starlette) -> AsyncIterator[None]:
            async with hub.running():
                # a served hub: what exists now (modules, settings, connectors, rules)
                # lives as long as the process; keep it out of the collector's full
                # passes, which otherwise walk it again and again during a burst
                gc.freeze()
                yield

        self.web = Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/metrics", metrics),
                *api.routes,
                *reconcile_api.routes,
                *dispatch_api.routes,
                *board.routes,
                *channels.routes,
                *delivery_routes.routes,
                *stream.routes,
            ],
            middleware=[Middleware(TokenAuth, hub=hub)],
            lifespan=run_hub if lifespan else None,
        )
        self.web.state.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/webhooks/"):
            await self.ingest(scope, receive, send)
        else:
            await self.web(scope, receive, send)


def create_app(hub: Hub, *, lifespan: bool = True) -> HubApp:
    return HubApp(hub, lifespan=lifespan)


async def healthz(request: Request) -> Response:
    """503 while the ingest writer is down (being replaced): pushes would get 503 too."""
    hub: Hub = request.app.state.hub
    workers = hub.store.workers()
    ok = workers.get("ingest writer", {}).get("up", False)
    body = {
        "ok": ok,
        "writer_queue": hub.store.queue_depth(),
        "ingest_oldest_wait_ms": round(hub.store.ingest_waited() * 1000, 1),
        "workers": workers,
    }
    return JSONResponse(body, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    hub.metrics.queue_depth.set(hub.store.queue_depth())
    hub.metrics.ingest_waited.set(hub.store.ingest_waited())
    for name, state in hub.store.workers().items():
        hub.metrics.worker_up.labels(name).set(1 if state["up"] else 0)
        hub.metrics.worker_restarts.labels(name).set(state["restarts"])
    return Response(hub.metrics.render(), media_type=CONTENT_TYPE_LATEST)
