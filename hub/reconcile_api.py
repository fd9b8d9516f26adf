"""Read-only API on the safety net: platform API health (circuit breakers) and
reconciliation runs, for the board and for people asking "are we in sync?"."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors import apiclient
from hub.auth import requires
from hub.runtime import Hub
from hub.store import reconcile_sql


def api_health() -> list[dict[str, Any]]:
    """Each platform API's breaker and call counts (this process); the board shows it too."""
    out = []
    for runtime in sorted(apiclient.current_runtimes(), key=lambda r: r.platform):
        breaker = runtime.breaker
        out.append(
            {
                "platform": runtime.platform,
                "breaker": breaker.state.name.lower(),
                "consecutive_failures": breaker.failures,
                "last_error": breaker.last_error or None,
                "retry_in_seconds": round(breaker.retry_after(), 1),
                "calls": dict(sorted(runtime.stats.calls.items())),
            }
        )
    return out


@requires("supervisor", "operator", "viewer")
async def platform_apis(request: Request) -> Response:
    """Each platform API's breaker and call counts (this process)."""
    return JSONResponse({"platforms": api_health()})


@requires("supervisor", "operator", "viewer")
async def reconcile_runs(request: Request) -> Response:
    """Watermarks per shop and the latest runs (`?shop=`, `?limit=`, max 200)."""
    hub: Hub = request.app.state.hub
    shop = request.query_params.get("shop") or None
    try:
        limit = min(int(request.query_params.get("limit", "20")), 200)
    except ValueError:
        return JSONResponse(
            {"error": {"reason": "bad_query", "detail": "limit is a whole number"}},
            status_code=400,
        )
    runs = await hub.store.read(reconcile_sql.runs, shop, limit)
    states = await hub.store.read(reconcile_sql.states)
    if shop:
        states = [s for s in states if s["shop"] == shop]
    return JSONResponse({"shops": states, "runs": runs})


routes = [
    Route("/api/platform-apis", platform_apis),
    Route("/api/reconcile", reconcile_runs),
]
