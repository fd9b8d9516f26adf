"""Subscriptions end to end: real receivers on 127.0.0.1, the real ingest path, the
official standardwebhooks package verifying what arrives."""

from __future__ import annotations

import json

import pytest
from standardwebhooks import Webhook

from hub.delivery import fanout
from hub.store import delivery_sql, queries
from tests.conftest import serve_app
from tests.delivery.conftest import Receiver, push, running, subscribe, wait_until

pytestmark = pytest.mark.anyio


async def test_subscriber_receives_signed_events_it_can_verify(make_settings, notify):
    receiver = Receiver()
    thin = Receiver()
    with serve_app(receiver) as url, serve_app(thin) as thin_url:
        async with running(make_settings()) as (hub, client, _):
            sub = await subscribe(client, url + "/erp", name="erp")
            thin_sub = await subscribe(client, thin_url, kinds=["paid"], include_payload=False)
            await push(client, "A1", "paid", buyer_note="请尽快发货")
            await push(client, "A2", "cancelled")
            await wait_until(lambda: _done(hub, 3), "three deliveries done")
    assert len(receiver.log) == 2
    # the BI endpoint asked for paid events only, without the platform's payload
    (only,) = thin.log
    data = Webhook(thin_sub["secret"]).verify(only.body, only.headers)["data"]
    assert data["order_id"] == "A1" and "payload" not in data
    verifier = Webhook(sub["secret"])
    kinds = []
    for got in receiver.log:
        envelope = verifier.verify(got.body, got.headers)
        kinds.append(envelope["type"])
        assert envelope["data"]["shop"] == "acme"
        assert envelope["data"]["amount"] == "12.30"
        assert got.headers["webhook-id"].startswith("msg_")
        if envelope["type"] == "order.paid":  # non-ASCII survives signing byte for byte
            assert envelope["data"]["payload"]["data"]["buyer_note"] == "请尽快发货"
    assert sorted(kinds) == ["order.cancelled", "order.paid"]


async def _done(hub, n):
    counts = await hub.store.read(delivery_sql.state_counts)
    return counts.get("done", 0) >= n and counts


async def _row(hub, state=None):
    rows = await hub.store.read(
        lambda c: delivery_sql.list_rows(c, delivery_sql.RowFilter(kind="subscription"))
    )
    return rows[0] if rows and (state is None or rows[0]["state"] == state) else None


async def test_receiver_failing_twice_gets_the_event_on_the_third_attempt(make_settings, notify):
    receiver = Receiver(answer=lambda n, body: (500 if n < 2 else 200, {}, 0.0))
    with serve_app(receiver) as url:
        async with running(make_settings()) as (hub, client, _):
            await subscribe(client, url)
            await push(client, "B1")
            row = await wait_until(lambda: _row(hub, "done"), "delivery done")
            detail = await hub.store.read(delivery_sql.get_row, row["id"])
    assert [r.status for r in receiver.log] == [500, 500, 200]
    log = detail["attempt_log"]
    assert [a["outcome"] for a in log] == ["retry", "retry", "done"]
    assert [a["response_status"] for a in log] == [500, 500, 200]
    assert log[0]["response_body"] == "nope"
    assert log[0]["request"]["headers"]["webhook-id"] == f"msg_{row['id']}"
    assert all(a["duration_ms"] >= 0 for a in log)
    # the same message id on every attempt: the receiver can dedupe
    assert len({r.headers["webhook-id"] for r in receiver.log}) == 1
    assert notify.alerts == []


async def test_dead_after_three_failures_alerts_and_can_be_resent(make_settings, notify):
    answers = {"status": 500}
    receiver = Receiver(answer=lambda n, body: (answers["status"], {}, 0.0))
    with serve_app(receiver) as url:
        async with running(make_settings()) as (hub, client, _):
            await subscribe(client, url)
            await push(client, "C1")
            row = await wait_until(lambda: _row(hub, "dead"), "row dead")
            assert row["attempts"] == 3 and len(receiver.log) == 3
            assert len(notify.alerts) == 1 and "dead" in notify.alerts[0]["title"].lower()
            assert f"outbox retry {row['id']}" in notify.alerts[0]["text"]
            answers["status"] = 200
            response = await client.post(f"/api/outbox/{row['id']}/retry")
            assert response.status_code == 200, response.text
            await wait_until(lambda: _row(hub, "done"), "re-sent row done")
    assert [r.status for r in receiver.log] == [500, 500, 500, 200]


async def test_receiver_hanging_past_the_timeout_is_retried(make_settings, notify):
    receiver = Receiver(answer=lambda n, body: (200, {}, 3.0 if n == 0 else 0.0))
    with serve_app(receiver) as url:
        async with running(make_settings(timeout=0.3, lease_seconds=2.0)) as (hub, client, _):
            await subscribe(client, url)
            await push(client, "D1")
            row = await wait_until(lambda: _row(hub, "done"), "delivery done")
            detail = await hub.store.read(delivery_sql.get_row, row["id"])
    first, second = detail["attempt_log"]
    assert first["outcome"] == "retry" and "timeout" in first["error"].lower()
    assert first["response_status"] is None
    assert first["request"]["url"].startswith("http://127.0.0.1")  # evidence kept
    assert second["outcome"] == "done"


async def test_410_disables_the_endpoint_and_parks_its_messages(make_settings, notify, tmp_path):
    receiver = Receiver(answer=lambda n, body: (410, {}, 0.0))
    with serve_app(receiver) as url:
        async with running(make_settings()) as (hub, client, _):
            sub = await subscribe(client, url)
            await push(client, "E1")
            await wait_until(lambda: _row(hub, "disabled"), "row disabled")
            got = (await client.get(f"/api/subscriptions/{sub['id']}")).json()
            assert got["disabled_at"] and "410" in got["disabled_reason"]
            await push(client, "E2")  # not queued for a disabled subscription
            await wait_until(
                lambda: hub.store.read(
                    lambda c: (
                        c.execute(
                            "SELECT last_event_id FROM stage_cursors WHERE stage = ?",
                            ("delivery.subscriptions",),
                        ).fetchone()[0]
                        == 2
                    )
                ),
                "fan-out past E2",
            )
            counts = await hub.store.read(delivery_sql.state_counts)
    assert counts == {"disabled": 1}
    assert len(receiver.log) == 1  # 410 is final: never retried
    assert "disabled" in notify.alerts[0]["title"]


async def test_retry_after_is_honoured(make_settings, notify):
    receiver = Receiver(answer=lambda n, body: (429, {"retry-after": "120"}, 0.0))
    with serve_app(receiver) as url:
        async with running(make_settings()) as (hub, client, _):
            await subscribe(client, url)
            await push(client, "F1")
            row = await wait_until(lambda: _row_with_attempts(hub), "the first attempt settled")
    waited = _seconds_between(row["updated_at"], row["next_attempt_at"])
    assert 119 <= waited <= 121, waited  # not the 0.05 s backoff: the receiver's 120 s
    assert row["last_status"] == 429 and len(receiver.log) == 1


async def _row_with_attempts(hub):
    row = await _row(hub, "pending")
    return row if row and row["sends"] == 1 and row["attempts"] == 1 else None


def _seconds_between(a: str, b: str) -> float:
    from hub.model import parse_iso

    return (parse_iso(b) - parse_iso(a)).total_seconds()


async def test_events_of_one_order_arrive_in_order(make_settings, notify):
    # O-1's first event keeps failing until O-2 has arrived: O-1's second event must wait
    # for it, and O-2 must not (if O-2 were held up behind O-1, O-1 would never succeed)
    seen: list[tuple[str, str]] = []

    def answer(n, body):
        data = json.loads(body)["data"]
        seen.append((data["order_id"], data["kind"]))
        held = data["order_id"] == "O-1" and data["kind"] == "paid" and ("O-2", "paid") not in seen
        return (500 if held else 200, {}, 0.0)

    receiver = Receiver(answer=answer)
    settings = make_settings(max_attempts=50, backoff_base=0.05, backoff_max=0.05)
    with serve_app(receiver) as url:
        async with running(settings) as (hub, client, _):
            await subscribe(client, url)
            await push(client, "O-1", "paid")
            await push(client, "O-1", "shipped")
            await wait_until(lambda: _first_failed(receiver), "O-1 failing")
            await push(client, "O-2", "paid")
            await wait_until(lambda: _done(hub, 3), "all three delivered")
    sequence = [(r.order_id, r.kind, r.status) for r in receiver.log]
    o1 = [s for s in sequence if s[0] == "O-1"]
    assert o1[-2:] == [("O-1", "paid", 200), ("O-1", "shipped", 200)]
    assert all(s == ("O-1", "paid", 500) for s in o1[:-2]) and len(o1) >= 3
    assert sequence.index(("O-2", "paid", 200)) < sequence.index(("O-1", "paid", 200))


async def _first_failed(receiver):
    return any(r.status == 500 for r in receiver.log)


async def test_secret_rotation_sends_both_signatures(make_settings, notify):
    receiver = Receiver()
    with serve_app(receiver) as url:
        async with running(make_settings()) as (hub, client, _):
            sub = await subscribe(client, url)
            rotated = (
                await client.post(f"/api/subscriptions/{sub['id']}/rotate", json={"grace_hours": 1})
            ).json()
            await push(client, "R1")
            await wait_until(lambda: _done(hub, 1), "delivered")
    got = receiver.log[0]
    assert rotated["secret"] != sub["secret"] and rotated["rotating_until"]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(sub["secret"]).verify(got.body, got.headers)  # receiver not yet switched
    Webhook(rotated["secret"]).verify(got.body, got.headers)  # receiver already switched


async def test_a_dead_receiver_raises_one_alert_not_one_per_message(make_settings, notify):
    receiver = Receiver(answer=lambda n, body: (404, {}, 0.0))
    with serve_app(receiver) as url:
        async with running(make_settings(max_attempts=1)) as (hub, client, _):
            await subscribe(client, url)
            for n in range(3):
                await push(client, f"Z-{n}")

            async def all_dead():
                counts = await hub.store.read(delivery_sql.state_counts)
                return counts.get("dead") == 3

            await wait_until(all_dead, "three dead rows")
            metrics = (await client.get("/metrics")).text
    assert len(notify.alerts) == 1
    assert 'orderhook_outbox_attempts_total{kind="subscription",outcome="dead"} 3.0' in metrics


async def test_a_reloaded_delivery_section_applies_to_the_next_send(make_settings, notify):
    receiver = Receiver(answer=lambda n, body: (500, {}, 0.0))
    with serve_app(receiver) as url:
        async with running(make_settings(max_attempts=100, backoff_base=0.3)) as (hub, client, _):
            await subscribe(client, url)
            await push(client, "L-1")
            await wait_until(lambda: _row_with_attempts(hub), "first failure")
            hub.settings = make_settings(max_attempts=2, backoff_base=0.3)  # as a reload does
            row = await wait_until(lambda: _row(hub, "dead"), "dead under the new limit")
    assert row["attempts"] == 2


async def test_a_subscription_gets_the_events_committed_after_it_was_added(make_settings, notify):
    """Before any subscription exists, committed events are stepped over, not queued
    for later: a subscriber added afterwards starts with what comes next. That holds
    for an event the fan-out has not stepped over yet (it does so once a second while
    nobody subscribes): the subscription starts after the last event at its creation."""
    receiver = Receiver()
    with serve_app(receiver) as url:
        async with running(make_settings()) as (hub, client, _):
            await push(client, "B1", "paid")
            await wait_until(lambda: _stepped_over(hub), "fan-out stepped over B1")
            await push(client, "B1b", "paid")  # within the second: not stepped over yet
            await subscribe(client, url, name="late")
            await push(client, "B2", "paid")
            await wait_until(lambda: _done(hub, 1), "one delivery done")
    (only,) = receiver.log
    assert json.loads(only.body)["data"]["order_id"] == "B2"


async def _stepped_over(hub):
    return await hub.store.read(queries.cursor, fanout.STAGE) > 0
