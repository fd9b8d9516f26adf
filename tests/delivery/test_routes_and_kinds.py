"""The admin API for subscriptions and the outbox, and the notify kind through the
notification stage's `deliver` (a stand-in until hub.notify lands)."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook

from connectors.base import SendResult
from hub import notify as hub_notify
from hub.auth import issue_token
from hub.store import Store, delivery_sql
from hub.store.outbox_sql import enqueue
from tests.conftest import serve_app
from tests.delivery.conftest import Receiver, push, running, subscribe, wait_until

pytestmark = pytest.mark.anyio


async def test_subscription_admin_api(make_settings):
    settings = make_settings()
    operator = Store(settings.db).run(issue_token, "op", "operator")
    async with running(settings) as (_hub, client, _):
        created = await client.post(
            "/api/subscriptions",
            json={"url": "http://127.0.0.1:9/erp", "kinds": ["paid"], "name": "erp"},
        )
        assert created.status_code == 201, created.text
        sub = created.json()
        listed = (await client.get("/api/subscriptions")).json()
        disabled = await client.post(f"/api/subscriptions/{sub['id']}/disable")
        after = (await client.get(f"/api/subscriptions/{sub['id']}")).json()
        enabled = await client.post(f"/api/subscriptions/{sub['id']}/enable")
        bad_kind = await client.post(
            "/api/subscriptions", json={"url": "http://127.0.0.1:9/", "kinds": ["teleported"]}
        )
        bad_json = await client.post("/api/subscriptions", content=b"{nope")
        unknown = await client.post("/api/subscriptions/999/disable")
        bad_action = await client.post(f"/api/subscriptions/{sub['id']}/explode")
        bad_secret = await client.post(
            "/api/subscriptions", json={"url": "http://127.0.0.1:9/", "secret": 42}
        )
        bad_rotate = await client.post(f"/api/subscriptions/{sub['id']}/rotate", json=[1])
        bad_limit = await client.get("/api/outbox", params={"limit": "-1"})
        bad_state = await client.get("/api/outbox", params={"state": "lost"})
        forbidden = await client.get(
            "/api/subscriptions", headers={"authorization": f"Bearer {operator}"}
        )
    assert sub["secret"].startswith("whsec_") and sub["kinds"] == ["paid"]
    assert [s["name"] for s in listed] == ["erp"] and "secret" not in listed[0]
    assert disabled.status_code == 200 and after["disabled_reason"] == "disabled by hand"
    assert enabled.status_code == 200
    assert bad_kind.status_code == 400 and "teleported" in bad_kind.json()["error"]["detail"]
    assert bad_json.status_code == 400
    assert unknown.status_code == 404 and bad_action.status_code == 404
    assert bad_secret.status_code == bad_rotate.status_code == bad_limit.status_code == 400
    assert bad_state.status_code == 400 and "pending" in bad_state.json()["error"]["detail"]
    assert forbidden.status_code == 403


@pytest.fixture
def channel(notify, monkeypatch):
    """hub.notify.deliver with answers scripted per channel (the channels' wire formats
    have their own tests; this is about what the outbox does with the results)."""
    answers: dict[str, list[SendResult]] = {}
    sent: list[tuple[str, dict]] = []

    async def deliver(hub, target, payload, http):
        sent.append((target, payload))
        return answers.get(target, [SendResult(True)]).pop(0)

    monkeypatch.setattr(hub_notify, "deliver", deliver)
    return answers, sent, notify


async def test_notify_rows_go_through_the_notification_stage(make_settings, channel):
    answers, sent, notify = channel
    answers["wecom"] = [SendResult(False, retryable=False, code="93000", detail="invalid key")]
    answers["dingtalk"] = [
        SendResult(False, status=200, code="130101", retry_after=1.0),
        SendResult(True),
    ]
    async with running(make_settings()) as (hub, client, _):
        ids = await hub.store.write(
            lambda conn: [
                enqueue(conn, kind="notify", target=t, payload={"title": t})
                for t in ("wecom", "dingtalk", "email")
            ]
        )

        async def settled():
            rows = [await hub.store.read(delivery_sql.get_row, i) for i in ids]
            return all(r["state"] in ("done", "dead") for r in rows) and rows

        wecom, dingtalk, email = await wait_until(settled, "all three settled", limit=20)
        listed = (await client.get("/api/outbox", params={"kind": "notify"})).json()
        shown = (await client.get(f"/api/outbox/{ids[0]}")).json()
    assert wecom["state"] == "dead" and wecom["attempt_log"][0]["code"] == "93000"
    assert dingtalk["state"] == "done" and len(dingtalk["attempt_log"]) == 2
    assert email["state"] == "done" and ("email", {"title": "email"}) in sent
    assert notify.alerts == []  # a dead notification raises no alert (it could loop)
    assert {r["id"] for r in listed} == set(ids)
    assert shown["attempt_log"][0]["error"] == "invalid key"


async def test_dead_delivery_alert_reaches_ops_through_the_real_notify_channel(make_settings):
    # no stand-ins: hub.notify queues the alert, the outbox worker sends it to a
    # Standard Webhooks ops channel, and ops can verify it
    ops_secret = "whsec_" + "b3BzLWNoYW5uZWwtc2VjcmV0LWZvci1vcmRlcmhvb2s="
    erp, ops = Receiver(answer=lambda n, body: (500, {}, 0.0)), Receiver()
    with serve_app(erp) as erp_url, serve_app(ops) as ops_url:
        extra = (
            '[notify]\nalerts = ["ops"]\n\n[notify.channels.ops]\nkind = "webhook"\n'
            f'url = "{ops_url}/alerts"\nsecret = "{ops_secret}"\n'
        )
        async with running(make_settings(extra=extra, max_attempts=2)) as (hub, client, _):
            await subscribe(client, erp_url)
            await push(client, "N-1")

            async def alert_sent():
                rows = await hub.store.read(
                    lambda c: delivery_sql.list_rows(c, delivery_sql.RowFilter(kind="notify"))
                )
                return rows and rows[0]["state"] == "done"

            await wait_until(alert_sent, "the alert delivered to ops")
    assert len(erp.log) == 2
    (message,) = ops.log
    data = Webhook(ops_secret).verify(message.body, message.headers)["data"]
    assert data["severity"] == "critical"
    assert "Delivery dead" in data["title"] and "outbox retry" in data["text"]
