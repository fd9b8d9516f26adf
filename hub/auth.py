"""Bearer tokens for people and systems; every route but the platforms' needs one.

Tokens are random (`oh_` + 32 bytes, URL-safe), shown once when made, and stored only
as SHA-256 (their entropy makes a slow hash pointless). Each belongs to a user with
one role; routes say which roles may call them with `requires(...)`.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from functools import wraps
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.store import queries

if TYPE_CHECKING:
    from hub.runtime import Hub

ROLES = ("admin", "supervisor", "operator", "cs", "finance", "picker", "viewer")
PUBLIC_PREFIXES = ("/webhooks/", "/healthz")
# A browser cannot send a bearer header with a page load or an EventSource: under this
# prefix the token may also come as `?token=` (once; the board moves it into a cookie)
# or in this cookie (HttpOnly, SameSite=Strict, path /board).
BROWSER_PREFIX = "/board"
BOARD_COOKIE = "orderhook_token"


def new_token() -> str:
    return "oh_" + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(conn: sqlite3.Connection, user_name: str, role: str | None = None) -> str:
    """Create the user if needed (role required then) and return a fresh token."""
    user = queries.find_user(conn, user_name)
    if user is None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        user_id = queries.create_user(conn, user_name, role)
    else:
        user_id = user["id"]
    token = new_token()
    queries.add_token(conn, user_id, digest(token), token[:10])
    return token


class TokenAuth:
    """Pure ASGI middleware: resolves `Authorization: Bearer` to `scope["user"]`."""

    def __init__(self, app: ASGIApp, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None and scope["path"].startswith(BROWSER_PREFIX):
            token = _browser_token(scope)
        user = await self.hub.store.read(queries.token_owner, digest(token)) if token else None
        if user is None:
            reason = "missing_token" if not token else "invalid_token"
            response = JSONResponse(
                {
                    "error": {
                        "reason": reason,
                        "detail": "send 'Authorization: Bearer <token>' "
                        "(make one with `orderhook users add NAME --role ROLE`)",
                    }
                },
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        scope["user"] = user
        await self.app(scope, receive, send)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _browser_token(scope: Scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0].strip() or None
    for name, value in scope["headers"]:
        if name == b"cookie":
            jar = SimpleCookie()
            jar.load(value.decode("latin-1"))
            if BOARD_COOKIE in jar and jar[BOARD_COOKIE].value:
                return jar[BOARD_COOKIE].value
    return None


Endpoint = Callable[[Request], Awaitable[Response]]


def requires(*roles: str) -> Callable[[Endpoint], Endpoint]:
    """Allow only these roles (admin always passes) on a route."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def decorate(endpoint: Endpoint) -> Endpoint:
        @wraps(endpoint)
        async def guarded(request: Request) -> Response:
            user: dict[str, Any] = request.scope.get("user") or {}
            role = user.get("role")
            if role != "admin" and role not in roles:
                return JSONResponse(
                    {
                        "error": {
                            "reason": "forbidden",
                            "detail": f"role {role!r} may not do this; needs one of "
                            f"{', '.join(('admin', *roles))}",
                        }
                    },
                    status_code=403,
                )
            return await endpoint(request)

        return guarded

    return decorate
