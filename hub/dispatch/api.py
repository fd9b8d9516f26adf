"""The tasks API: operators list, claim, release and complete their work; supervisors
also take the supervisor queue, hand tasks to people and see everyone's load.

    GET  /api/tasks                      mine + my groups' queues (supervisor: all open)
    POST /api/tasks/{id}/claim           take it (an assigned task, or one from the queue)
    POST /api/tasks/{id}/release         put it back in the group queue
    POST /api/tasks/{id}/complete        done; frees capacity for the queue
    POST /api/tasks/{id}/assign          supervisor: {"operator": "ana"}
    GET  /api/operators                  load against capacity
    POST /api/operators/{name}/status    {"status": "working|away|off"} ("me" for oneself)
    GET  /api/dispatch/log               decisions (?platform=&shop=&order_id=&limit=)

Every change is one `store.write` that also records the decision and hands out what the
freed capacity allows. Refusals are 4xx with a machine-readable reason.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub import orders
from hub.auth import requires
from hub.dispatch import assign, state
from hub.dispatch.config import STATUSES, DispatchConfig
from hub.model import iso_utc, utcnow
from hub.runtime import Hub
from hub.store import dispatch_sql


@dataclass(frozen=True)
class Actor:
    name: str
    role: str

    @property
    def supervises(self) -> bool:
        return self.role in ("supervisor", "admin")


class Refused(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _actor(request: Request) -> Actor:
    user = request.scope["user"]
    return Actor(user["name"], user["role"])


def _error(status: int, reason: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": {"reason": reason, "detail": detail}}, status_code=status)


async def _change(request: Request, fn: Any, *args: Any) -> Response:
    """Run a task change in the writer; a refusal rolls nothing back (it writes nothing)."""
    hub = _hub(request)
    live = state.of(hub)
    result = await hub.store.write(_guarded, fn, live.config, _actor(request), *args)
    if isinstance(result, Refused):
        return _error(result.status, result.reason, result.detail)
    live.pulse.beat()
    return JSONResponse(result)


def _guarded(conn: sqlite3.Connection, fn: Any, *args: Any) -> Any:
    try:
        return fn(conn, *args)
    except Refused as refused:  # raised before any write: nothing to undo
        return refused


def _task(conn: sqlite3.Connection, task_id: int) -> dict[str, Any]:
    task = dispatch_sql.get_task(conn, task_id)
    if task is None:
        raise Refused(404, "not_found", f"no task {task_id}")
    if task["state"] not in dispatch_sql.OPEN_STATES:
        raise Refused(409, "task_closed", f"task {task_id} is {task['state']}")
    return task


def _key(task: dict[str, Any]) -> tuple[str, str, str]:
    return task["platform"], task["shop"], task["order_id"]


def claim(conn: sqlite3.Connection, config: DispatchConfig, actor: Actor, task_id: int) -> dict:
    task = _task(conn, task_id)
    now = iso_utc(utcnow())
    if task["state"] == "claimed":
        if task["assignee"] == actor.name:
            return task
        raise Refused(409, "already_claimed", f"task {task_id} is claimed by {task['assignee']}")
    if task["assignee"] not in (None, actor.name) and not actor.supervises:
        raise Refused(409, "assigned_to_other", f"task {task_id} is assigned to {task['assignee']}")
    if task["queue"] == "supervisor" and not actor.supervises:
        raise Refused(403, "supervisor_queue", f"task {task_id} was escalated to supervisors")
    if not actor.supervises and task["assignee"] != actor.name:
        op = dispatch_sql.get_operator(conn, actor.name)
        if op is None or task["grp"] not in op["groups"]:
            raise Refused(403, "not_in_group", f"{actor.name} is not an operator of {task['grp']}")
        if op["open"] >= op["capacity"]:
            raise Refused(
                409, "over_capacity", f"{actor.name} has {op['open']}/{op['capacity']} open tasks"
            )
    dispatch_sql.claim_task(conn, task_id, actor.name, now)
    orders.advance(conn, _key(task), "assigned", f"task:{task_id} claimed by {actor.name}")
    dispatch_sql.log_task(
        conn,
        "claimed",
        now,
        task,
        operator=actor.name,
        detail=f"from {task['state']} ({task['queue']} queue)",
    )
    return _after(conn, config, task_id, now)


def release(conn: sqlite3.Connection, config: DispatchConfig, actor: Actor, task_id: int) -> dict:
    task = _task(conn, task_id)
    if task["assignee"] is None:
        raise Refused(409, "not_assigned", f"task {task_id} is not held by anyone")
    if task["assignee"] != actor.name and not actor.supervises:
        raise Refused(403, "not_yours", f"task {task_id} is held by {task['assignee']}")
    now = iso_utc(utcnow())
    dispatch_sql.requeue_task(conn, task_id, now, released_by=task["assignee"])
    dispatch_sql.log_task(
        conn, "released", now, task, detail=f"released by {actor.name}; back in the group queue"
    )
    return _after(conn, config, task_id, now)


def complete(conn: sqlite3.Connection, config: DispatchConfig, actor: Actor, task_id: int) -> dict:
    task = _task(conn, task_id)
    if task["state"] != "claimed":
        raise Refused(409, "not_claimed", f"claim task {task_id} before completing it")
    if task["assignee"] != actor.name and not actor.supervises:
        raise Refused(403, "not_yours", f"task {task_id} is held by {task['assignee']}")
    now = iso_utc(utcnow())
    dispatch_sql.close_task(conn, task_id, "done", f"completed by {actor.name}", now)
    dispatch_sql.log_task(conn, "completed", now, task, detail=f"completed by {actor.name}")
    return _after(conn, config, task_id, now)


def hand_to(
    conn: sqlite3.Connection, config: DispatchConfig, actor: Actor, task_id: int, name: str
) -> dict:
    if not actor.supervises:
        raise Refused(403, "forbidden", "only supervisors hand tasks to people")
    task = _task(conn, task_id)
    op = dispatch_sql.get_operator(conn, name)
    if op is None:
        raise Refused(404, "no_operator", f"no operator {name!r} in the config")
    if op["status"] != "working":
        raise Refused(409, "operator_unavailable", f"{name} is {op['status']}")
    if op["open"] >= op["capacity"] and task["assignee"] != name:
        raise Refused(409, "over_capacity", f"{name} has {op['open']}/{op['capacity']} open tasks")
    now = iso_utc(utcnow())
    dispatch_sql.requeue_task(conn, task_id, now)  # back in the group queue, clock restarted
    why = f"handed to {name} by supervisor {actor.name} ({op['open']}/{op['capacity']} open)"
    assign.give(conn, {**task, "state": "queued"}, name, why, now)
    return _after(conn, config, task_id, now)


def set_status(
    conn: sqlite3.Connection, config: DispatchConfig, actor: Actor, name: str, status: str
) -> dict:
    name = actor.name if name == "me" else name
    if name != actor.name and not actor.supervises:
        raise Refused(403, "forbidden", "operators set only their own status")
    if status not in STATUSES:
        raise Refused(400, "bad_status", f"status is one of {', '.join(STATUSES)}")
    if dispatch_sql.get_operator(conn, name) is None:
        raise Refused(404, "no_operator", f"no operator {name!r} in the config")
    now = iso_utc(utcnow())
    dispatch_sql.set_operator_status(conn, name, status, now)
    dispatch_sql.log(
        conn, "operator_status", now, operator=name, detail=f"{status} (by {actor.name})"
    )
    assign.hand_out(conn, config, now)
    return dispatch_sql.get_operator(conn, name) or {}


def _after(conn: sqlite3.Connection, config: DispatchConfig, task_id: int, now: str) -> dict:
    assign.hand_out(conn, config, now)
    return dispatch_sql.get_task(conn, task_id) or {}


def _task_id(request: Request) -> int:
    try:
        return int(request.path_params["id"])
    except ValueError:
        raise Refused(400, "bad_id", "task ids are whole numbers") from None


# --- endpoints ----------------------------------------------------------------------


@requires("operator", "supervisor")
async def list_tasks(request: Request) -> Response:
    actor, q = _actor(request), request.query_params
    states = tuple(q["state"].split(",")) if "state" in q else dispatch_sql.OPEN_STATES

    def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        if actor.supervises:
            return dispatch_sql.list_tasks(
                conn,
                states=states,
                groups=[q["group"]] if "group" in q else None,
                queue=q.get("queue"),
                assignee=q.get("assignee"),
            )
        op = dispatch_sql.get_operator(conn, actor.name)
        mine = dispatch_sql.list_tasks(conn, states=states, assignee=actor.name)
        if op is None:
            return mine
        waiting = dispatch_sql.list_tasks(
            conn, states=("queued",), groups=op["groups"], queue="group"
        )
        return mine + waiting

    return JSONResponse(await _hub(request).store.read(read))


def _task_action(action: Any) -> Any:
    """An endpoint POST /api/tasks/{id}/<action> for operators and supervisors."""

    @requires("operator", "supervisor")
    async def endpoint(request: Request) -> Response:
        try:
            return await _change(request, action, _task_id(request))
        except Refused as refused:
            return _error(refused.status, refused.reason, refused.detail)

    return endpoint


claim_task = _task_action(claim)
release_task = _task_action(release)
complete_task = _task_action(complete)


@requires("supervisor")
async def assign_task(request: Request) -> Response:
    try:
        task_id = _task_id(request)
        body = await _json_body(request)
    except Refused as refused:
        return _error(refused.status, refused.reason, refused.detail)
    name = body.get("operator")
    if not isinstance(name, str) or not name:
        return _error(400, "bad_body", 'send {"operator": "<name>"}')
    return await _change(request, hand_to, task_id, name)


@requires("operator", "supervisor")
async def operator_status(request: Request) -> Response:
    try:
        body = await _json_body(request)
    except Refused as refused:
        return _error(refused.status, refused.reason, refused.detail)
    return await _change(request, set_status, request.path_params["name"], body.get("status"))


@requires("operator", "supervisor")
async def list_operators(request: Request) -> Response:
    return JSONResponse(await _hub(request).store.read(dispatch_sql.operator_loads))


@requires("supervisor", "operator", "viewer")
async def decision_log(request: Request) -> Response:
    q = request.query_params
    key = (
        (q["platform"], q["shop"], q["order_id"])
        if "order_id" in q and "platform" in q and "shop" in q
        else None
    )
    try:
        limit = min(int(q.get("limit", "100")), 1000)
    except ValueError:
        return _error(400, "bad_query", "limit is a whole number")
    rows = await _hub(request).store.read(
        lambda conn: dispatch_sql.decisions(conn, key=key, limit=limit)
    )
    return JSONResponse(rows)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise Refused(400, "bad_body", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refused(400, "bad_body", "the body is a JSON object")
    return body


routes = [
    Route("/api/tasks", list_tasks),
    Route("/api/tasks/{id}/claim", claim_task, methods=["POST"]),
    Route("/api/tasks/{id}/release", release_task, methods=["POST"]),
    Route("/api/tasks/{id}/complete", complete_task, methods=["POST"]),
    Route("/api/tasks/{id}/assign", assign_task, methods=["POST"]),
    Route("/api/operators", list_operators),
    Route("/api/operators/{name}/status", operator_status, methods=["POST"]),
    Route("/api/dispatch/log", decision_log),
]
