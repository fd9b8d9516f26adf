"""One dead or slow receiver must not starve the others: the circuit breaker, the
per-destination cap, and a receiver that comes back after an outage."""

from __future__ import annotations

import pytest

from hub.store import delivery_sql
from tests.conftest import free_port, serve_app
from tests.delivery.conftest import Receiver, push, running, subscribe, wait_until

pytestmark = pytest.mark.anyio


async def _states(hub, target):
    rows = await hub.store.read(
        lambda c: delivery_sql.list_rows(
            c, delivery_sql.RowFilter(kind="subscription", target=target), limit=1000
        )
    )
    return rows


async def test_receiver_down_for_a_while_gets_everything_and_others_are_not_starved(
    make_settings, notify
):
    port = free_port()  # nothing listens here yet: connection refused
    healthy = Receiver()
    late = Receiver()
    settings = make_settings(breaker_failures=2, breaker_cooldown=0.2, per_destination=2)
    with serve_app(healthy) as healthy_url:
        async with running(settings) as (hub, client, _):
            down = await subscribe(client, f"http://127.0.0.1:{port}/erp")
            ok = await subscribe(client, healthy_url)
            for n in range(8):
                await push(client, f"P-{n}")
            await wait_until(lambda: _all_done(hub, str(ok["id"]), 8), "healthy receiver got all 8")

            async def probes_seen():
                rows = await _states(hub, str(down["id"]))
                probes = 0
                for row in rows:
                    log = await hub.store.read(delivery_sql.attempts_of, row["id"])
                    probes += len([a for a in log if not a["counted"]])
                return probes >= 3 and rows

            rows = await wait_until(probes_seen, "several breaker probes")
            # the outage used at most the failures that opened the breaker: nothing is dead
            assert all(r["state"] in ("pending", "leased") for r in rows)
            assert all(r["attempts"] < 3 for r in rows)
            assert notify.alerts and "paused" in notify.alerts[0]["title"].lower()
            with serve_app(late, port=port):
                await wait_until(
                    lambda: _all_done(hub, str(down["id"]), 8), "late receiver got all 8"
                )
    assert sorted(r.order_id for r in late.ok()) == [f"P-{n}" for n in range(8)]
    assert len(healthy.ok()) == 8


async def _all_done(hub, target, n):
    rows = await _states(hub, target)
    return len(rows) == n and all(r["state"] == "done" for r in rows)


async def test_per_destination_cap_bounds_concurrent_sends(make_settings, notify):
    slow = Receiver(answer=lambda n, body: (200, {}, 0.3))
    with serve_app(slow) as url:
        async with running(make_settings(per_destination=2)) as (hub, client, _):
            sub = await subscribe(client, url)
            for n in range(6):
                await push(client, f"Q-{n}")  # six orders: no ordering constraint between them
            await wait_until(lambda: _all_done(hub, str(sub["id"]), 6), "all six delivered")
    assert slow.max_inflight == 2


async def test_slow_down_on_503_sends_one_at_a_time_afterwards(make_settings, notify):
    def answer(n, body):
        return (503, {"retry-after": "0"}, 0.0) if n == 0 else (200, {}, 0.15)

    receiver = Receiver(answer=answer)
    with serve_app(receiver) as url:
        async with running(make_settings(per_destination=4)) as (hub, client, _):
            sub = await subscribe(client, url)
            await push(client, "S-0")
            await wait_until(lambda: _states(hub, str(sub["id"])), "first row queued")
            await wait_until(lambda: _any_attempt(hub, str(sub["id"])), "the 503")
            for n in range(1, 4):
                await push(client, f"S-{n}")
            await wait_until(lambda: _all_done(hub, str(sub["id"]), 4), "all delivered")
    # after the 503 the destination's window is 1 and grows back with each success
    assert receiver.max_inflight <= 2


async def _any_attempt(hub, target):
    rows = await _states(hub, target)
    return rows and rows[-1]["sends"] >= 1 and rows[-1]["state"] != "leased"
