"""The live board at `/board`: backlog per stage and group, oldest unclaimed task,
operators' load, escalations, dead outbox rows and failed verifications of the last
hour, kept current by server-sent events (`/board/events`).

A browser cannot put a bearer header on a page load or an EventSource, so the board
also takes the token once as `/board?token=...`: the answer stores it in an HttpOnly,
SameSite=Strict cookie scoped to `/board` and redirects to the bare URL, so the token
does not stay in the address bar or the history (see hub.auth).
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from hub import reconcile, reconcile_api
from hub.auth import BOARD_COOKIE, requires
from hub.dispatch import state
from hub.model import utcnow
from hub.runtime import Hub
from hub.store import board_sql, reconcile_sql

PAGE = files("hub.board").joinpath("page.html")
REFRESH_SECONDS = 2.0  # ages on the board tick even when nothing happens
MIN_INTERVAL = 0.25  # at most four snapshots a second, however busy the hub


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


@requires("supervisor", "operator", "viewer")
async def page(request: Request) -> Response:
    token = request.query_params.get("token")
    if token:
        response: Response = RedirectResponse("/board", status_code=303)
        response.set_cookie(
            BOARD_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            path="/board",
            secure=request.url.scheme == "https",
        )
        return response
    return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"cache-control": "no-store"})


async def board_state(hub: Hub) -> dict[str, Any]:
    live = state.of(hub)
    snap = await hub.store.read(board_sql.snapshot, utcnow())
    # the safety net's health, beside the work it protects
    snap["platform_apis"] = reconcile_api.api_health()
    snap["reconcile"] = await hub.store.read(reconcile_sql.states)
    for row in snap["reconcile"]:
        # a block left on a shop the hub no longer pulls (removed, reconcile = false)
        # needs no one: the page shows it quietly instead of raising the alarm
        shop = hub.settings.shops.get(row["shop"])
        row["reconciled"] = shop is not None and reconcile.has_api(shop)
    snap["ingest"] = {
        **hub.shedding.view(),
        "oldest_wait_ms": round(hub.store.ingest_waited() * 1000, 1),
        "shed_after_ms": hub.settings.shed_after_ms,
    }
    snap["rules"] = {
        "count": len(live.config.rules),
        "loaded_at": live.loaded_at,
        "error": live.error,
        "error_at": live.error_at,
    }
    return snap


@requires("supervisor", "operator", "viewer")
async def snapshot(request: Request) -> Response:
    return JSONResponse(await board_state(_hub(request)))


class Snapshots:
    """One snapshot shared by every open board, computed at most every MIN_INTERVAL
    seconds: on a sale night the pulse beats after every commit, and ten open boards
    must not mean ten times the queries."""

    def __init__(self) -> None:
        self.text = ""
        self.version = -1
        self.at = 0.0
        self.lock = asyncio.Lock()

    async def get(self, hub: Hub) -> str:
        pulse = state.of(hub).pulse
        async with self.lock:
            age = time.monotonic() - self.at
            if self.text and self.version == pulse.version and age < REFRESH_SECONDS / 2:
                return self.text
            if age < MIN_INTERVAL:
                await asyncio.sleep(MIN_INTERVAL - age)
            version = pulse.version  # read before the query: a later change is not lost
            snap = await board_state(hub)
            self.text = json.dumps(snap, ensure_ascii=False, default=str)
            self.version, self.at = version, time.monotonic()
            return self.text


_snapshots: weakref.WeakKeyDictionary[Hub, Snapshots] = weakref.WeakKeyDictionary()


@requires("supervisor", "operator", "viewer")
async def events(request: Request) -> Response:
    hub = _hub(request)
    pulse = state.of(hub).pulse
    shared = _snapshots.setdefault(hub, Snapshots())

    async def stream() -> AsyncIterator[dict[str, str]]:
        last = ""
        while True:
            seen = pulse.version  # before reading: a change during the read wakes us at once
            data = await shared.get(hub)
            if data != last:
                last = data
                yield {"event": "snapshot", "data": data}
            await pulse.wait(seen, REFRESH_SECONDS)

    return EventSourceResponse(stream(), ping=15, headers={"cache-control": "no-store"})


routes = [
    Route("/board", page),
    Route("/board/snapshot", snapshot),
    Route("/board/events", events),
]
