"""SSRF guard: private targets refused when a subscription is added and when it is sent."""

from __future__ import annotations

import pytest

from hub.delivery import subscriptions
from hub.delivery.guard import (
    GuardedBackend,
    TargetRefused,
    check_url,
    guarded_transport,
    refused_reason,
)
from hub.store import Store, delivery_sql
from tests.conftest import serve_app
from tests.delivery.conftest import Receiver, push, running, wait_until

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata service
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(address):
    assert refused_reason(address) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert refused_reason(address) is None


def test_urls_checked_when_added():
    with pytest.raises(TargetRefused, match="loopback"):
        check_url("http://127.0.0.1:9000/hook", allow_private=False)
    with pytest.raises(TargetRefused, match="loopback"):
        check_url("http://localhost/hook", allow_private=False)
    with pytest.raises(TargetRefused, match="not an http"):
        check_url("file:///etc/passwd", allow_private=True)
    with pytest.raises(TargetRefused, match="credentials"):
        check_url("https://user:pw@example.com/", allow_private=True)
    check_url("http://127.0.0.1:9000/hook", allow_private=True)


def test_transport_uses_the_guard():
    # guarded_transport swaps httpx's private pool; fail loudly if httpx changes under us
    import httpx

    transport = guarded_transport(allow_private=False, limits=httpx.Limits())
    assert isinstance(transport._pool._network_backend, GuardedBackend)


async def test_api_refuses_a_private_target(make_settings):
    async with running(make_settings(allow_private=False)) as (_hub, client, _):
        response = await client.post(
            "/api/subscriptions", json={"url": "http://169.254.169.254/latest/meta-data"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["reason"] == "target_refused"


async def test_send_time_guard_refuses_even_a_stored_private_target(make_settings, notify):
    # the row got in somehow (DNS said public when it was added): the send is still refused
    receiver = Receiver()
    settings = make_settings(allow_private=False)
    with serve_app(receiver) as url:
        Store(settings.db).run(subscriptions.add, subscriptions.NewSubscription(url=url))
        async with running(settings) as (hub, client, _):
            await push(client, "X1")

            async def dead():
                rows = await hub.store.read(
                    lambda c: delivery_sql.list_rows(c, delivery_sql.RowFilter(state="dead"))
                )
                return rows

            rows = await wait_until(dead, "refused row dead")
            detail = await hub.store.read(delivery_sql.get_row, rows[0]["id"])
    assert receiver.log == []
    assert detail["attempt_log"][0]["code"] == "ssrf_refused"
    assert len(detail["attempt_log"]) == 1  # permanent: not retried
