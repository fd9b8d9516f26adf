"""HTTP API of the delivery stage.

POST /api/orders/{platform}/{shop}/{order_id}/shipment   report a shipment (reverse sync)
POST /api/orders/{order_id}/shipment                     same, when the id is unambiguous
GET  /api/subscriptions            POST /api/subscriptions           (admin)
GET  /api/subscriptions/{id}       POST /api/subscriptions/{id}/disable|enable|rotate
GET  /api/outbox[?state=&kind=&target=&order_key=&limit=&before=]   (supervisor)
GET  /api/outbox/{id}              POST /api/outbox/{id}/retry
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.auth import requires
from hub.delivery import config, shipments, signals, subscriptions
from hub.delivery.guard import TargetRefused
from hub.runtime import Hub
from hub.store import delivery_sql, orders_sql

SHIPMENT_ROLES = ("admin", "supervisor", "operator", "picker")
MAX_BODY = 64 * 1024

Endpoint = Callable[[Request], Awaitable[Response]]


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _error(status: int, reason: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"error": {"reason": reason, "detail": detail, **extra}}, status_code=status
    )


async def _json(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ValueError(f"body is larger than {MAX_BODY} bytes")
    if not body:
        return {}
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"invalid JSON: {exc}") from None


def _id(request: Request) -> int | None:
    text = request.path_params["id"]
    return int(text) if text.isdigit() else None


# --- reverse sync -----------------------------------------------------------------------------


def may_report_shipments(endpoint: Endpoint) -> Endpoint:
    """Warehouse and order roles, or a system user named in [delivery] shipment_users."""

    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        user: dict[str, Any] = request.scope.get("user") or {}
        allowed = config.of(_hub(request).settings).shipment_users
        if user.get("role") in SHIPMENT_ROLES or user.get("name") in allowed:
            return await endpoint(request)
        return _error(
            403,
            "forbidden",
            f"role {user.get('role')!r} may not report shipments; needs one of "
            f"{', '.join(SHIPMENT_ROLES)} or a user listed in [delivery] shipment_users",
        )

    return guarded


async def _ship(request: Request, platform: str, shop: str, order_id: str) -> Response:
    hub = _hub(request)
    configured = hub.settings.shop(shop)
    if configured is None or configured.platform != platform:
        return _error(404, "unknown_shop", f"no shop {shop!r} on platform {platform!r}")
    try:
        shipment = shipments.Shipment.from_json(await _json(request))
    except ValueError as exc:
        return _error(400, "bad_shipment", str(exc))
    user = request.scope["user"]["name"]

    def queue(conn: Any) -> tuple[dict[str, Any], bool] | None:
        if not delivery_sql.order_exists(conn, platform, shop, order_id):
            return None
        return shipments.request_shipment(conn, platform, shop, order_id, shipment, user)

    result = await hub.store.write(queue)
    if result is None:
        return _error(404, "unknown_order", f"no order {order_id} in {platform}/{shop}")
    row, created = result
    signals.outbox_changed(hub).set()
    return JSONResponse(
        row,
        status_code=202 if created else 200,
        headers={"location": f"/api/orders/{platform}/{shop}/{order_id}"},
    )


@may_report_shipments
async def ship(request: Request) -> Response:
    p = request.path_params
    return await _ship(request, p["platform"], p["shop"], p["order_id"])


@may_report_shipments
async def ship_by_id(request: Request) -> Response:
    order_id = request.path_params["order_id"]
    found = await _hub(request).store.read(orders_sql.find_orders, order_id)
    if not found:
        return _error(404, "unknown_order", f"no order {order_id}")
    if len(found) > 1:
        return _error(
            409,
            "ambiguous_order",
            f"order id {order_id} exists in {len(found)} shops; "
            "use /api/orders/{platform}/{shop}/{order_id}/shipment",
            candidates=[
                {"platform": o["platform"], "shop": o["shop"], "order_id": o["order_id"]}
                for o in found
            ],
        )
    only = found[0]
    return await _ship(request, only["platform"], only["shop"], order_id)


# --- subscriptions (admin) --------------------------------------------------------------------


def _strings(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} must be a list of strings")
    return value


@requires()
async def list_subscriptions(request: Request) -> Response:
    rows = await _hub(request).store.read(delivery_sql.list_subscriptions)
    return JSONResponse([subscriptions.public(r) for r in rows])


@requires()
async def add_subscription(request: Request) -> Response:
    hub = _hub(request)
    try:
        data = await _json(request)
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            raise ValueError("body must be a JSON object with a url")
        secret = data.get("secret")
        if secret is not None and not isinstance(secret, str):
            raise ValueError("secret must be a whsec_ string")
        include = data.get("include_payload", True)
        if not isinstance(include, bool):
            raise ValueError("include_payload must be true or false")
        new = subscriptions.NewSubscription(
            url=data["url"],
            name=str(data.get("name") or ""),
            kinds=_strings(data, "kinds"),
            platforms=_strings(data, "platforms"),
            shops=_strings(data, "shops"),
            include_payload=include,
            secret=secret,
        )
        # resolving the host blocks: do it on a thread, before taking the writer
        await hub.store.read(lambda _conn: new.validate(config.of(hub.settings)))
    except TargetRefused as exc:
        return _error(400, "target_refused", str(exc))
    except ValueError as exc:
        return _error(400, "bad_subscription", str(exc))
    sub = await hub.store.write(subscriptions.add, new)
    return JSONResponse(subscriptions.public(sub, with_secret=True), status_code=201)


@requires()
async def get_subscription(request: Request) -> Response:
    sub_id = _id(request)
    sub = await _hub(request).store.read(delivery_sql.get_subscription, sub_id or 0)
    if sub is None:
        return _error(404, "not_found", f"no subscription {request.path_params['id']}")
    return JSONResponse(subscriptions.public(sub))


@requires()
async def change_subscription(request: Request) -> Response:
    hub = _hub(request)
    sub_id = _id(request) or 0
    action = request.path_params["action"]
    if action not in ("disable", "enable", "rotate"):
        return _error(404, "not_found", f"no action {action!r} (disable, enable, rotate)")
    try:
        data = await _json(request)
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        if action == "disable":
            parked = await hub.store.write(subscriptions.disable, sub_id)
            return JSONResponse({"id": sub_id, "disabled": True, "parked": parked})
        if action == "enable":
            queued = await hub.store.write(subscriptions.enable, sub_id)
            return JSONResponse({"id": sub_id, "disabled": False, "requeued": queued})
        grace = data.get("grace_hours", config.of(hub.settings).rotation_grace_hours)
        if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
            raise ValueError("grace_hours must be a number >= 0")
        secret = data.get("secret")
        if secret is not None and not isinstance(secret, str):
            raise ValueError("secret must be a whsec_ string")
        sub = await hub.store.write(subscriptions.rotate, sub_id, float(grace), secret)
        return JSONResponse(subscriptions.public(sub, with_secret=True))
    except LookupError as exc:
        return _error(404, "not_found", str(exc))
    except ValueError as exc:
        return _error(400, "bad_request", str(exc))


# --- outbox (supervisor) ----------------------------------------------------------------------


@requires("supervisor")
async def list_outbox(request: Request) -> Response:
    q = request.query_params
    try:
        limit = int(q.get("limit", "50"))
        before = int(q["before"]) if "before" in q else None
        if not 1 <= limit <= 500:
            raise ValueError
    except ValueError:
        return _error(400, "bad_query", "limit is 1..500 and before a whole number")
    try:
        flt = delivery_sql.RowFilter(
            state=q.get("state"),
            kind=q.get("kind"),
            target=q.get("target"),
            order_key=q.get("order_key"),
        )
    except ValueError as exc:  # an unknown state
        return _error(400, "bad_query", str(exc))
    rows = await _hub(request).store.read(
        lambda conn: delivery_sql.list_rows(conn, flt, limit=limit, before_id=before)
    )
    return JSONResponse(rows)


@requires("supervisor")
async def get_outbox(request: Request) -> Response:
    row = await _hub(request).store.read(delivery_sql.get_row, _id(request) or 0)
    if row is None:
        return _error(404, "not_found", f"no outbox row {request.path_params['id']}")
    return JSONResponse(row)


@requires("supervisor")
async def retry_outbox(request: Request) -> Response:
    outbox_id = _id(request) or 0
    done = await _hub(request).store.write(delivery_sql.requeue, [outbox_id])
    if not done:
        return _error(
            409, "not_retryable", f"outbox row {outbox_id} does not exist or is leased or done"
        )
    return JSONResponse({"requeued": done})


routes = [
    Route("/api/orders/{platform}/{shop}/{order_id}/shipment", ship, methods=["POST"]),
    Route("/api/orders/{order_id}/shipment", ship_by_id, methods=["POST"]),
    Route("/api/subscriptions", list_subscriptions, methods=["GET"]),
    Route("/api/subscriptions", add_subscription, methods=["POST"]),
    Route("/api/subscriptions/{id}", get_subscription, methods=["GET"]),
    Route(
        "/api/subscriptions/{id}/{action:str}",
        change_subscription,
        methods=["POST"],
    ),
    Route("/api/outbox", list_outbox, methods=["GET"]),
    Route("/api/outbox/{id}", get_outbox, methods=["GET"]),
    Route("/api/outbox/{id}/retry", retry_outbox, methods=["POST"]),
]
