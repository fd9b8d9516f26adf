"""`orderhook listen` and `/api/stream/requests`: pushes a hub accepts, forwarded live."""

from __future__ import annotations

import json
import threading

import httpx
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors import standard
from hub.cli import cli
from tests.conftest import DEMO_SECRET, serve_app

LOCAL_SECRET = "whsec_" + "bG9jYWwtZGV2ZWxvcGVyLWVuZHBvaW50LXNlY3JldA=="


def push(base: str, order_id: str, secret: str = DEMO_SECRET) -> int:
    body = json.dumps({"type": "order.paid", "data": {"order_id": order_id}}).encode()
    headers = standard.sign_headers(secret, f"msg_{order_id}", body)
    return httpx.post(f"{base}/webhooks/standard/acme", content=body, headers=headers).status_code


def test_listen_forwards_accepted_pushes_resigned_for_the_local_endpoint(
    live_hub, admin_token, tmp_path
):
    url, _hub = live_hub
    got: list[tuple[str, bool]] = []

    async def local(request: Request) -> JSONResponse:
        body = await request.body()
        h = request.headers
        expected = standard.signature(
            standard.secret_bytes(LOCAL_SECRET), h["webhook-id"], h["webhook-timestamp"], body
        )
        got.append((json.loads(body)["data"]["order_id"], h["webhook-signature"] == expected))
        return JSONResponse({"ok": True})

    assert push(url, "1") == 200
    assert (
        push(url, "2", secret="whsec_" + "d3Jvbmctc2VjcmV0LWZvci1saXN0ZW4=") == 401
    )  # not forwarded
    with serve_app(Starlette(routes=[Route("/hook", local, methods=["POST"])])) as dev:
        runner = CliRunner()
        box: dict[str, object] = {}

        def run() -> None:
            box["result"] = runner.invoke(
                cli,
                [
                    "listen",
                    "--forward-to",
                    f"{dev}/hook",
                    "--hub",
                    url,
                    "--token",
                    admin_token,
                    "--secret",
                    LOCAL_SECRET,
                    "--after",
                    "0",
                    "--count",
                    "2",
                    "--json",
                    "--config",
                    str(tmp_path / "none.toml"),
                ],
            )

        thread = threading.Thread(target=run)
        thread.start()
        assert push(url, "3") == 200  # accepted while listening
        thread.join(timeout=30)
    result = box["result"]
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = [json.loads(x) for x in result.output.splitlines() if x.startswith("{")]  # type: ignore[attr-defined]
    assert [e["request_id"] for e in lines] == [1, 3] and all(e["status"] == 200 for e in lines)
    assert got == [("1", True), ("3", True)]


def test_the_stream_needs_a_supervisor_token_and_a_valid_query(live_hub, settings, tmp_path):
    url, _hub = live_hub
    from hub.auth import issue_token
    from hub.store import Store

    viewer = Store(settings.db).run(issue_token, "vera", "viewer")
    r = httpx.get(f"{url}/api/stream/requests", headers={"authorization": f"Bearer {viewer}"})
    assert r.status_code == 403
    admin = Store(settings.db).run(issue_token, "root2", "admin")
    r = httpx.get(
        f"{url}/api/stream/requests?outcome=maybe", headers={"authorization": f"Bearer {admin}"}
    )
    assert r.status_code == 400 and r.json()["error"]["reason"] == "bad_query"
    result = CliRunner().invoke(
        cli,
        [
            "listen",
            "--forward-to",
            "http://127.0.0.1:9/x",
            "--hub",
            url,
            "--token",
            viewer,
            "--config",
            str(tmp_path / "none.toml"),
        ],
    )
    assert result.exit_code == 1 and "403" in result.output
