"""Nothing is lost when the process dies: between attempts, in the middle of a send, or
with a lease held by a worker that is gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from hub import settings as settings_mod
from hub.delivery import subscriptions
from hub.model import iso_utc, utcnow
from hub.store import Store, delivery_sql
from hub.store.outbox_sql import enqueue
from tests.conftest import BASE_CONFIG, free_port, serve_app
from tests.delivery.conftest import Receiver, delivery_toml, running, wait_until
from tests.helpers import order_body, signed

BIN = Path(sys.executable).parent


def _start(config: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [str(BIN / "orderhook"), "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return proc


def _wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        assert proc.poll() is None, "orderhook serve exited"
        try:
            if httpx.get(base + "/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("orderhook serve did not come up")


def _poll(check, what: str, limit: float = 30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.mark.slow
def test_process_killed_mid_send_and_between_attempts_loses_nothing(write_config):
    # one order, three events: the first delivery fails (500), its retry hangs and the
    # hub is killed -9 in the middle of it; a new process sends everything, in order
    def answer(n, body):
        return [(500, {}, 0.0), (200, {}, 2.0)][n] if n < 2 else (200, {}, 0.0)

    receiver = Receiver(answer=answer)
    port = free_port()
    config = write_config(
        delivery_toml(backoff_base=0.3, timeout=1.5, lease_seconds=2.0, poll_interval=0.05),
        base=BASE_CONFIG.replace('db = "hub.db"', f'db = "hub.db"\nport = {port}'),
    )
    settings = settings_mod.load(config, env={})
    store = Store(settings.db)
    base = f"http://127.0.0.1:{port}"
    with serve_app(receiver) as url:
        store.run(subscriptions.add, subscriptions.NewSubscription(url=url))
        first = _start(config)
        try:
            _wait_healthy(base, first)
            for kind in ("created", "paid", "shipped"):
                body = order_body(f"order.{kind}", "K-1")
                response = httpx.post(
                    base + "/webhooks/standard/acme", content=body, headers=signed(body)
                )
                assert response.status_code == 200
            _poll(lambda: len(receiver.log) >= 2, "the retry to be in flight")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        # the row is still leased by the dead process
        leased = store.run(
            lambda c: delivery_sql.list_rows(c, delivery_sql.RowFilter(state="leased"))
        )
        assert len(leased) == 1
        second = _start(config)
        try:
            _wait_healthy(base, second)

            def all_done():
                counts = store.run(delivery_sql.state_counts)
                return counts == {"done": 3} and counts

            _poll(all_done, "all three rows done after the restart")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=15)
    delivered = [(json.loads(r.body)["type"], r.status) for r in receiver.log]
    assert delivered[0] == ("order.created", 500)
    assert delivered[1] == ("order.created", 200)  # the send the kill interrupted
    assert [t for t, s in delivered[2:]] == ["order.created", "order.paid", "order.shipped"]
    ids = {r.headers["webhook-id"] for r in receiver.log if "created" in r.body.decode()}
    assert len(ids) == 1  # the resend carries the same id: the receiver can dedupe


@pytest.mark.anyio
async def test_sweeper_takes_back_a_lease_left_by_a_dead_worker(make_settings, notify):
    receiver = Receiver()
    settings = make_settings(lease_seconds=1.5)
    with serve_app(receiver) as url:
        store = Store(settings.db)
        sub = store.run(subscriptions.add, subscriptions.NewSubscription(url=url))

        def stale_lease(conn):
            row_id = enqueue(conn, kind="subscription", target=str(sub["id"]), payload={"x": 1})
            past = iso_utc(utcnow() - timedelta(seconds=5))
            conn.execute(
                "UPDATE outbox SET state='leased', lease_owner='gone:1', lease_until=? WHERE id=?",
                (past, row_id),
            )
            return row_id

        row_id = store.run(stale_lease)
        async with running(settings) as (hub, _client, _):

            async def done():
                row = await hub.store.read(delivery_sql.get_row, row_id)
                return row["state"] == "done" and row

            await wait_until(done, "the orphaned row delivered")
    assert len(receiver.log) == 1 and json.loads(receiver.log[0].body) == {"x": 1}


def test_sweeper_takes_back_only_expired_leases(settings):
    store = Store(settings.db)

    def setup(conn):
        row_id = enqueue(conn, kind="notify", target="ops", payload={})
        now = utcnow()
        delivery_sql.claim(
            conn,
            now=iso_utc(now),
            lease_until={"notify": iso_utc(now + timedelta(seconds=60))},
            owner="me",
            capacity={},
            default_capacity=4,
            limit=10,
        )
        return row_id

    row_id = store.run(setup)
    assert store.run(delivery_sql.holds_lease, row_id, "me")
    assert not store.run(delivery_sql.holds_lease, row_id, "someone-else")
    # the sweeper only takes back expired leases
    assert store.run(delivery_sql.sweep, iso_utc(utcnow())) == 0
    later = iso_utc(utcnow() + timedelta(seconds=61))
    assert store.run(delivery_sql.sweep, later) == 1
    assert not store.run(delivery_sql.holds_lease, row_id, "me")


def test_delivered_rows_are_pruned_after_their_retention(settings):
    store = Store(settings.db)

    def seed(conn):
        ids = [enqueue(conn, kind="notify", target="ops", payload={"n": n}) for n in range(3)]
        old, recent = "2026-01-01T00:00:00.000000Z", iso_utc(utcnow())
        for row_id, state, settled in zip(
            ids, ("done", "done", "dead"), (old, recent, old), strict=True
        ):
            conn.execute(
                "UPDATE outbox SET state = ?, settled_at = ? WHERE id = ?", (state, settled, row_id)
            )
            delivery_sql.add_attempt(
                conn,
                delivery_sql.Attempt(row_id, old, 1.0, {}, 200, "", None, None, state, True),
            )
        return ids

    ids = store.run(seed)
    assert store.run(delivery_sql.prune_done, "2026-06-01T00:00:00Z") == 1
    assert store.run(delivery_sql.get_row, ids[0]) is None
    assert store.run(delivery_sql.attempts_of, ids[0]) == []
    assert store.run(delivery_sql.get_row, ids[1])["state"] == "done"  # recent: kept
    assert store.run(delivery_sql.get_row, ids[2])["state"] == "dead"  # dead: kept for people
