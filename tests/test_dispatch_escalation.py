"""Escalation from stored timestamps (survives restarts) and hot reload of the rules."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from hub import settings as settings_mod
from hub.auth import issue_token
from hub.dispatch import escalate, state
from hub.model import iso_utc, utcnow
from hub.runtime import Hub
from hub.store import Store, dispatch_sql
from tests.dispatch_support import DISPATCH_TOML, eventually, push

pytestmark = pytest.mark.anyio

# the config is re-read every 0.05 s; the background escalation scan runs once at start
# and then hourly, so the tests below call `escalate_due` themselves and see its result
QUICK_RELOAD = DISPATCH_TOML.replace(
    'notify = ["ops-wecom"]',
    'notify = ["ops-wecom"]\nescalation_scan_seconds = 3600\nreload_seconds = 0.05',
)
FAST_SCAN = QUICK_RELOAD.replace("escalation_scan_seconds = 3600", "escalation_scan_seconds = 0.05")


@pytest.fixture
def settings(write_config):
    return settings_mod.load(write_config(QUICK_RELOAD), env={})


def backdate(minutes: float, order_id: str):
    def run(conn):
        conn.execute(
            "UPDATE tasks SET waiting_since = ?, created_at = ? WHERE order_id = ?",
            (iso_utc(utcnow() - timedelta(minutes=minutes)),) * 2 + (order_id,),
        )

    return run


async def task(hub, order_id, state=None):
    async def ready():
        row = await hub.store.read(dispatch_sql.task_for_order, ("standard", "acme", order_id))
        return row if row and (state is None or row["state"] == state) else None

    return await eventually(ready)


async def test_unclaimed_past_the_group_limit_goes_to_supervisors_and_notifies(hub, client):
    cfg = state.of(hub).config
    await push(client, "paid", "7001", amount="900", province="广东")  # vip, limit 10 min
    await push(client, "paid", "7002", amount="900", province="广东")
    first = await task(hub, "7001", "assigned")
    await task(hub, "7002")
    await hub.store.write(backdate(11, "7001"))
    await hub.store.write(backdate(9, "7002"))
    escalated = await hub.store.write(escalate.escalate_due, cfg, utcnow())
    assert escalated == [first["id"]]
    moved = await task(hub, "7001")
    assert (moved["queue"], moved["state"], moved["assignee"]) == ("supervisor", "queued", None)
    assert (await task(hub, "7002"))["escalated_at"] is None  # 9 of 10 minutes: not yet
    rows = await hub.store.read(
        lambda c: c.execute(
            "SELECT target, payload, dedupe_key FROM outbox WHERE dedupe_key LIKE "
            "'dispatch:escalated:%'"
        ).fetchall()
    )
    assert [r[0] for r in rows] == ["vip-dingtalk"]
    payload = json.loads(rows[0][1])
    assert payload["severity"] == "warning" and "unclaimed 11 min (limit 10 min)" in payload["text"]
    log = await hub.store.read(
        lambda c: dispatch_sql.decisions(c, key=("standard", "acme", "7001"))
    )
    assert [r["decision"] for r in log][:2] == ["notified", "escalated"]
    # a second scan escalates nothing again and queues no second notification
    assert await hub.store.write(escalate.escalate_due, cfg, utcnow()) == []


async def test_running_hub_scans_stored_timestamps(write_config):
    from httpx import ASGITransport, AsyncClient

    from hub.app import create_app

    hub = Hub(settings_mod.load(write_config(FAST_SCAN), env={}))
    async with hub.running():
        transport = ASGITransport(app=create_app(hub, lifespan=False))
        async with AsyncClient(transport=transport, base_url="http://hub") as client:
            await push(client, "paid", "7101", amount="10")  # general, limit 30 min
        await task(hub, "7101", "assigned")
        await hub.store.write(backdate(31, "7101"))
        # the running hub's own scan (every 0.05 s here) finds it from the stored timestamp
        assert "unclaimed 31 min" in await eventually(lambda: _escalated(hub, "7101"))
        assert (await task(hub, "7101"))["queue"] == "supervisor"
        line = b'orderhook_dispatch_waiting_tasks{group="general",queue="supervisor"} 1.0'
        await eventually(lambda: _true(line in hub.metrics.render()))
        assert (
            b'orderhook_dispatch_oldest_unclaimed_seconds{group="vip"} 0.0' in hub.metrics.render()
        )


async def test_escalation_after_restart_from_stored_timestamps(settings):
    first = Hub(settings, services=[])  # no stages: the task is made by hand below
    async with first.running():

        def make(conn):
            dispatch_sql.create_task(
                conn,
                ("standard", "acme", "7201"),
                "general",
                0,
                None,
                iso_utc(utcnow() - timedelta(minutes=45)),
            )

        await first.store.write(make)
    second = Hub(settings)
    async with second.running():
        moved = await eventually(lambda: _escalated(second, "7201"))
        assert "unclaimed 45 min (limit 30 min)" in moved


async def _escalated(hub, order_id):
    log = await hub.store.read(
        lambda c: dispatch_sql.decisions(c, key=("standard", "acme", order_id))
    )
    return next((r["detail"] for r in log if r["decision"] == "escalated"), None)


async def test_rules_hot_reload_and_a_bad_edit_keeps_the_old_rules(settings, hub, client):
    path = settings.source
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text + '\n[[dispatch.rules]]\nname = "shanghai"\nprovince = "上海"\ngroup = "vip"\n',
        encoding="utf-8",
    )
    live = state.of(hub)
    await eventually(lambda: _true(len(live.config.rules) == 4))
    await push(client, "paid", "7301", amount="10", province="上海")
    assert (await task(hub, "7301"))["rule"] == "shanghai"

    path.write_text(text + '\n[[dispatch.rules]]\nname = "broken"\ngroup = "nowhere"\n', "utf-8")
    await eventually(lambda: _true(live.error is not None))
    assert "rule dispatch.rules[4] 'broken': no group 'nowhere'" in live.error
    assert len(live.config.rules) == 4  # the previous good rules stay in force
    await push(client, "paid", "7302", amount="10", province="上海")
    assert (await task(hub, "7302"))["rule"] == "shanghai"
    log = await hub.store.read(lambda c: dispatch_sql.decisions(c, limit=50))
    rejected = [r for r in log if r["decision"] == "rules_rejected"]
    assert rejected and "nowhere" in rejected[0]["detail"]
    token = Store(settings.db).run(issue_token, "wall", "viewer")
    board = (await client.get(f"/board/snapshot?token={token}")).json()["rules"]
    assert board["count"] == 4 and str(path) in board["error"] and "nowhere" in board["error"]

    path.write_text(text, encoding="utf-8")  # fixed: back to three rules, error cleared
    await eventually(lambda: _true(live.error is None and len(live.config.rules) == 3))


async def _true(value: bool) -> bool:
    return value


async def test_stuck_backlog_notifies_once_an_hour(hub, client):
    for who in ("ana", "bo"):
        await hub.store.write(dispatch_sql.set_operator_status, who, "away", iso_utc(utcnow()))
    path = hub.settings.source
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "[dispatch.groups.general]\nescalate_after_minutes = 30",
            "[dispatch.groups.general]\nescalate_after_minutes = 30\nbacklog_alert = 2",
        ),
        encoding="utf-8",
    )
    live = state.of(hub)
    await eventually(lambda: _true(live.config.group("general").backlog_alert == 2))
    for n in range(3):
        await push(client, "paid", f"740{n}", amount="10")
    await task(hub, "7402")
    await hub.store.write(escalate.escalate_due, live.config, utcnow())
    await hub.store.write(escalate.escalate_due, live.config, utcnow())
    rows = await hub.store.read(
        lambda c: c.execute(
            "SELECT target, payload FROM outbox WHERE dedupe_key LIKE 'dispatch:backlog:%'"
        ).fetchall()
    )
    assert len(rows) == 1 and rows[0][0] == "ops-wecom"  # group names none: dispatch.notify
    payload = json.loads(rows[0][1])
    assert payload["severity"] == "critical" and "3 tasks wait in general" in payload["text"]
