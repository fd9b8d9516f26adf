"""`GET /api/stream/requests`: the requests the hub records, live, as Server-Sent Events.

Each event is one recording (sandbox/recordings.py) with the request id as the SSE id,
so a client that reconnects with `Last-Event-ID` misses nothing. `orderhook listen`
follows it and forwards each push to a developer's endpoint.

Query: `outcome=accepted` (default; a comma-separated list, or `all`), `after=ID`
(default: only requests recorded from now on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.auth import requires
from hub.runtime import Hub
from hub.store import sandbox_sql
from sandbox import recordings

OUTCOMES = ("accepted", "duplicate", "rejected", "error")
BATCH = 200
POLL_SECONDS = 1.0  # rejected and duplicate requests wake no commit listener


@requires("supervisor")
async def stream_requests(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    wanted = request.query_params.get("outcome", "accepted")
    outcomes = OUTCOMES if wanted == "all" else tuple(wanted.split(","))
    start = request.headers.get("last-event-id") or request.query_params.get("after")
    if set(outcomes) - set(OUTCOMES) or (start is not None and not start.isdigit()):
        return JSONResponse(
            {
                "error": {
                    "reason": "bad_query",
                    "detail": f"outcome is 'all' or some of {', '.join(OUTCOMES)}; "
                    "after / Last-Event-ID is a request id",
                }
            },
            status_code=400,
        )
    after = int(start) if start is not None else await hub.store.read(sandbox_sql.max_request_id)
    return EventSourceResponse(_events(hub, after, outcomes), ping=15)


async def _events(hub: Hub, after: int, outcomes: tuple[str, ...]) -> AsyncIterator[dict[str, Any]]:
    wake = asyncio.Event()

    def listener(_max_event_id: int) -> None:
        wake.set()

    hub.store.commit_listeners.append(listener)
    try:
        while True:
            wake.clear()
            rows = await hub.store.read(sandbox_sql.requests_after, after, outcomes, BATCH)
            for row in rows:
                after = row["id"]
                yield {
                    "id": str(row["id"]),
                    "event": "request",
                    "data": json.dumps(recordings.from_row(row), ensure_ascii=False),
                }
            if len(rows) < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), POLL_SECONDS)
    finally:
        hub.store.commit_listeners.remove(listener)


routes = [Route("/api/stream/requests", stream_requests)]
