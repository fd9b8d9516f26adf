"""The JSON API for people and systems (bearer token required; see hub.auth)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.auth import requires
from hub.runtime import Hub
from hub.store import delivery_sql, queries
from sandbox import recordings


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _error(status: int, reason: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": {"reason": reason, "detail": detail}}, status_code=status)


async def me(request: Request) -> Response:
    return JSONResponse(request.scope["user"])


@requires("supervisor")
async def list_requests(request: Request) -> Response:
    q = request.query_params
    try:
        limit = min(int(q.get("limit", "50")), 500)
        before = int(q["before"]) if "before" in q else None
    except ValueError:
        return _error(400, "bad_query", "limit and before are whole numbers")
    rows = await _hub(request).store.read(
        lambda conn: queries.list_requests(
            conn,
            limit=limit,
            before_id=before,
            outcome=q.get("outcome"),
            platform=q.get("platform"),
            shop=q.get("shop"),
        )
    )
    return JSONResponse([recordings.from_row(r) for r in rows])


@requires("supervisor")
async def get_request(request: Request) -> Response:
    try:
        request_id = int(request.path_params["id"])
    except ValueError:
        return _error(400, "bad_id", "request ids are whole numbers")
    row = await _hub(request).store.read(queries.get_request, request_id)
    if row is None:
        return _error(404, "not_found", f"no request {request_id}")
    return JSONResponse(recordings.from_row(row))


@requires("supervisor", "operator", "cs", "viewer")
async def get_order(request: Request) -> Response:
    p = request.path_params
    store = _hub(request).store
    order = await store.read(queries.get_order, p["platform"], p["shop"], p["order_id"])
    if order is None:
        return _error(404, "not_found", "no such order")
    order["events"] = await store.read(
        queries.events_for_order, p["platform"], p["shop"], p["order_id"]
    )
    order["shipments"] = await store.read(
        delivery_sql.shipments_for_order, p["platform"], p["shop"], p["order_id"]
    )
    return JSONResponse(order)


routes = [
    Route("/api/me", me),
    Route("/api/requests", list_requests),
    Route("/api/requests/{id}", get_request),
    Route("/api/orders/{platform}/{shop}/{order_id}", get_order),
]
