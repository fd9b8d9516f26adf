from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.auth import digest, issue_token, requires
from hub.runtime import Hub
from hub.store import Store, queries

pytestmark = pytest.mark.anyio


async def test_routes_need_a_valid_token(client: httpx.AsyncClient, admin_token: str) -> None:
    assert (await client.get("/healthz")).status_code == 200
    missing = await client.get("/api/me")
    assert missing.status_code == 401 and missing.json()["error"]["reason"] == "missing_token"
    wrong = await client.get("/api/me", headers={"authorization": "Bearer oh_nope"})
    assert wrong.json()["error"]["reason"] == "invalid_token"
    me = await client.get("/api/me", headers={"authorization": f"Bearer {admin_token}"})
    assert me.status_code == 200 and me.json()["role"] == "admin"


async def test_roles_limit_what_a_token_may_do(client: httpx.AsyncClient, hub: Hub) -> None:
    picker = hub.store.run(issue_token, "pat", "picker")
    auth = {"authorization": f"Bearer {picker}"}
    assert (await client.get("/api/me", headers=auth)).status_code == 200
    denied = await client.get("/api/requests", headers=auth)
    assert denied.status_code == 403 and denied.json()["error"]["reason"] == "forbidden"


async def test_revoked_tokens_stop_working(client: httpx.AsyncClient, hub: Hub) -> None:
    token = hub.store.run(issue_token, "ana", "operator")
    auth = {"authorization": f"Bearer {token}"}
    assert (await client.get("/api/me", headers=auth)).status_code == 200
    user = hub.store.run(queries.find_user, "ana")
    hub.store.run(queries.revoke_tokens, user["id"])
    assert (await client.get("/api/me", headers=auth)).status_code == 401


def test_tokens_are_stored_only_as_hashes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "t.db")
    token = store.run(issue_token, "erp", "admin")
    rows = store.run(lambda c: c.execute("SELECT token_sha256, prefix FROM tokens").fetchall())
    assert rows == [(digest(token), token[:10])]
    assert token not in repr(rows[0][0])


def test_unknown_roles_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        Store(tmp_path / "t.db").run(issue_token, "x", "superuser")
    with pytest.raises(ValueError):

        @requires("wizard")
        async def endpoint(request: Request) -> Response:
            return JSONResponse({})
