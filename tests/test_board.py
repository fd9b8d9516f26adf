"""The live board: token handling for browsers, what the snapshot shows, and the event
stream delivering a new push without a reload (over a real uvicorn)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from hub import settings as settings_mod
from hub.auth import issue_token
from hub.store import Store, dispatch_sql, reconcile_sql
from hub.store.outbox_sql import enqueue
from tests.dispatch_support import DISPATCH_TOML, eventually, push, push_body
from tests.helpers import signed

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(write_config):
    return settings_mod.load(write_config(DISPATCH_TOML), env={})


@pytest.fixture
def viewer_token(settings):
    return Store(settings.db).run(issue_token, "wall", "viewer")


async def test_board_needs_a_token_and_keeps_it_in_a_cookie(client, viewer_token):
    assert (await client.get("/board")).status_code == 401
    assert (await client.get("/board?token=oh_wrong")).status_code == 401
    r = await client.get(f"/board?token={viewer_token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/board"
    cookie = r.headers["set-cookie"]
    assert "orderhook_token=" in cookie and "HttpOnly" in cookie and "Path=/board" in cookie
    assert "samesite=strict" in cookie.lower()
    r = await client.get("/board", headers={"cookie": f"orderhook_token={viewer_token}"})
    assert r.status_code == 200 and "EventSource" in r.text
    # the cookie opens only the board, not the API
    assert (
        await client.get("/api/me", headers={"cookie": f"orderhook_token={viewer_token}"})
    ).status_code == 401


async def test_snapshot_shows_backlog_load_rejections_and_dead_rows(hub, client, viewer_token):
    for n in range(5):  # general: ana 2 + bo 2, one waits
        await push(client, "paid", f"66{n}", amount="10")

    # the stage runs after each ack, so the fifth task may still be on its way when four
    # are assigned: wait for the tasks themselves, then read the board's counts of them
    async def four_assigned_one_queued():
        tasks = await hub.store.read(dispatch_sql.list_tasks)
        return sorted(t["state"] for t in tasks) == ["assigned"] * 4 + ["queued"]

    await eventually(four_assigned_one_queued)
    body = push_body("paid", "6699")
    headers = signed(body, secret="whsec_d3JvbmctZGVtby1zZWNyZXQ=")
    assert (
        await client.post("/webhooks/standard/acme", content=body, headers=headers)
    ).status_code == 401

    def dead(conn):
        row = enqueue(conn, kind="notify", target="ops-wecom", payload={"title": "t"})
        conn.execute(
            "UPDATE outbox SET state = 'dead', last_error = 'errcode 93000' WHERE id = ?", (row,)
        )

    await hub.store.write(dead)
    start, end = datetime(2026, 11, 11, tzinfo=UTC), datetime(2026, 11, 11, 1, tzinfo=UTC)
    await hub.store.write(reconcile_sql.advance, "acme", "standard", 1, start, end)
    r = await client.get("/board/snapshot", headers={"authorization": f"Bearer {viewer_token}"})
    snap = r.json()
    assert snap["backlog"]["general"]["assigned"] == 4
    assert snap["backlog"]["general"]["queued"] == 1
    assert snap["backlog"]["general"]["oldest_unclaimed_s"] >= 0
    assert snap["stages"]["assigned"] == 4 and snap["stages"]["paid"] == 1
    loads = {o["name"]: (o["open"], o["capacity"]) for o in snap["operators"]}
    assert loads == {"ana": (2, 2), "bo": (2, 2), "cy": (0, 1)}
    assert snap["rejected_last_hour"] == {"bad_signature": 1}
    assert snap["dead_outbox"]["total"] == 1
    assert [(r["shop"], r["watermark"]) for r in snap["reconcile"]] == [
        ("acme", "2026-11-11T01:00:00.000000Z")
    ]
    assert snap["reconcile"][0]["blocked"] is None
    # a shop the hub does not pull (no API client here) is not one to raise the alarm for
    assert snap["reconcile"][0]["reconciled"] is False
    assert isinstance(snap["platform_apis"], list)
    assert snap["dead_outbox"]["recent"][0]["last_error"] == "errcode 93000"
    assert snap["rules"] == {
        "count": 3,
        "loaded_at": snap["rules"]["loaded_at"],
        "error": None,
        "error_at": None,
    }


def read_snapshots(lines):
    event = None
    for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "snapshot":
            yield json.loads(line.split(":", 1)[1])


def test_event_stream_carries_a_new_push_without_a_reload(live_hub, settings):
    url, _hub = live_hub
    token = Store(settings.db).run(issue_token, "wall", "viewer")
    with (
        httpx.Client(base_url=url, timeout=10) as http,
        http.stream(
            "GET", "/board/events", headers={"cookie": f"orderhook_token={token}"}
        ) as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        snapshots = read_snapshots(stream.iter_lines())
        assert next(snapshots)["recent_tasks"] == []
        body = push_body("paid", "5551", amount="900", province="广东")
        headers = signed(body)
        assert (
            http.post("/webhooks/standard/acme", content=body, headers=headers).status_code == 200
        )
        for snap in snapshots:
            if snap["recent_tasks"]:
                break
        task = snap["recent_tasks"][0]
        assert (task["order_id"], task["grp"], task["rule"]) == ("5551", "vip", "big-south")
