"""Reverse sync: a reported shipment becomes the platform's ship call through the outbox,
and the platform's answer is stored on the order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

import connectors
from connectors.base import InvalidParameter, PlatformBusy, RateLimited, SendResult
from hub.auth import issue_token
from hub.store import Store
from sandbox.fakes.platform_api import FakeOrder
from tests.conftest import DEMO_SECRET
from tests.delivery.conftest import push, running, wait_until
from tests.platform_fake import fake_api, shop_toml

pytestmark = pytest.mark.anyio

SECOND_SHOP = f"""
[shops.acme2]
platform = "standard"
secret = "{DEMO_SECRET}"
"""


@dataclass
class FakePlatform:
    """Stands in for a platform API client: scripted answers, recorded calls."""

    answers: list[Any] = field(default_factory=list)
    calls: list[tuple[str, str, str, str]] = field(default_factory=list)

    def client(self, shop: Any, **_: Any) -> FakePlatform.Client:
        return FakePlatform.Client(self, shop.name)

    @dataclass
    class Client:
        platform: FakePlatform
        shop: str

        async def ship(self, order_id: str, carrier: str, tracking_no: str) -> SendResult:
            self.platform.calls.append((self.shop, order_id, carrier, tracking_no))
            answer = self.platform.answers.pop(0) if self.platform.answers else SendResult(True)
            if isinstance(answer, Exception):
                raise answer
            return answer

        async def aclose(self) -> None:
            pass


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> FakePlatform:
    fake = FakePlatform()
    monkeypatch.setattr(connectors, "api_client", fake.client)
    return fake


async def _shipments(client, path="/api/orders/standard/acme/S-1"):
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()["shipments"]


async def _settled(client, state, path="/api/orders/standard/acme/S-1"):
    shipments = await _shipments(client, path)
    return shipments if shipments and shipments[0]["state"] == state else None


async def test_shipment_is_sent_to_the_platform_and_the_result_shown(
    make_settings, platform, notify
):
    async with running(make_settings()) as (_hub, client, _):
        await push(client, "S-1", "paid")
        await wait_until(lambda: _order_exists(client, "S-1"), "order applied")
        response = await client.post(
            "/api/orders/standard/acme/S-1/shipment",
            json={"carrier": "SF", "tracking_no": "SF1234567890"},
        )
        assert response.status_code == 202, response.text
        assert response.json()["state"] == "queued"
        shipments = await wait_until(lambda: _settled(client, "done"), "shipment done")
        again = await client.post(
            "/api/orders/standard/acme/S-1/shipment",
            json={"carrier": "SF", "tracking_no": "SF1234567890"},
        )
    assert platform.calls == [("acme", "S-1", "SF", "SF1234567890")]
    assert shipments[0]["code"] is None and shipments[0]["tracking_no"] == "SF1234567890"
    assert again.status_code == 200 and again.json()["id"] == shipments[0]["id"]  # idempotent


async def _order_exists(client, order_id, shop="acme"):
    return (await client.get(f"/api/orders/standard/{shop}/{order_id}")).status_code == 200


async def test_platform_refusal_is_stored_with_its_code_and_not_retried(
    make_settings, platform, notify
):
    platform.answers = [InvalidParameter("isv.logistics-invalid", "运单号不符合规则")]
    async with running(make_settings()) as (_hub, client, _):
        await push(client, "S-1")
        await wait_until(lambda: _order_exists(client, "S-1"), "order applied")
        await client.post(
            "/api/orders/standard/acme/S-1/shipment", json={"carrier": "YTO", "tracking_no": "X1"}
        )
        shipments = await wait_until(lambda: _settled(client, "failed"), "shipment failed")
    assert shipments[0]["code"] == "isv.logistics-invalid"
    assert shipments[0]["message"] == "运单号不符合规则"
    assert len(platform.calls) == 1
    assert notify.alerts and "dead" in notify.alerts[0]["title"].lower()


async def test_busy_platform_is_retried_and_rate_limit_waits(make_settings, platform, notify):
    platform.answers = [PlatformBusy("isp.top-remote-connection-timeout", "busy"), SendResult(True)]
    async with running(make_settings()) as (_hub, client, _):
        await push(client, "S-1")
        await wait_until(lambda: _order_exists(client, "S-1"), "order applied")
        await client.post(
            "/api/orders/standard/acme/S-1/shipment", json={"carrier": "SF", "tracking_no": "A1"}
        )
        await wait_until(lambda: _settled(client, "done"), "shipment done after a retry")
        assert len(platform.calls) == 2
        platform.answers = [RateLimited("accesscontrol.limited", "slow down", retry_after=300)]
        await client.post(
            "/api/orders/standard/acme/S-1/shipment", json={"carrier": "SF", "tracking_no": "A2"}
        )

        async def retrying():
            shipments = await _shipments(client)
            return shipments[-1]["state"] == "retrying" and shipments[-1]

        waiting = await wait_until(retrying, "rate-limited shipment waiting")
        row = (await client.get(f"/api/outbox/{waiting['outbox_id']}")).json()
    assert waiting["code"] == "accesscontrol.limited"
    assert row["state"] == "pending" and row["next_attempt_at"] > row["updated_at"]
    assert len(platform.calls) == 3


async def test_short_path_needs_an_unambiguous_order_id(make_settings, platform, notify):
    async with running(make_settings(extra=SECOND_SHOP)) as (_hub, client, _):
        await push(client, "DUP")
        await push(client, "DUP", shop="acme2")
        await push(client, "ONE")
        await wait_until(lambda: _order_exists(client, "DUP", "acme2"), "second order applied")
        await wait_until(lambda: _order_exists(client, "ONE"), "order applied")
        body = {"carrier": "SF", "tracking_no": "T1"}
        ambiguous = await client.post("/api/orders/DUP/shipment", json=body)
        unique = await client.post("/api/orders/ONE/shipment", json=body)
        missing = await client.post("/api/orders/NOPE/shipment", json=body)
    assert ambiguous.status_code == 409
    error = ambiguous.json()["error"]
    assert error["reason"] == "ambiguous_order"
    assert {c["shop"] for c in error["candidates"]} == {"acme", "acme2"}
    assert unique.status_code == 202 and unique.json()["shop"] == "acme"
    assert missing.status_code == 404 and missing.json()["error"]["reason"] == "unknown_order"


async def test_who_may_report_shipments(make_settings, platform, notify):
    settings = make_settings(shipment_users=["erp-bot"])
    store = Store(settings.db)
    tokens = {
        name: store.run(issue_token, name, role)
        for name, role in (("cs1", "cs"), ("erp-bot", "viewer"), ("picker1", "picker"))
    }
    async with running(settings) as (_hub, client, _):
        await push(client, "S-1")
        await wait_until(lambda: _order_exists(client, "S-1"), "order applied")

        async def report(user, tracking, body=None):
            return await client.post(
                "/api/orders/standard/acme/S-1/shipment",
                json=body or {"carrier": "SF", "tracking_no": tracking},
                headers={"authorization": f"Bearer {tokens[user]}"},
            )

        denied = await report("cs1", "T1")
        system = await report("erp-bot", "T2")
        picker = await report("picker1", "T3")
        bad = await report("picker1", "", {"carrier": "SF"})
        unknown_shop = await client.post(
            "/api/orders/standard/nope/S-1/shipment", json={"carrier": "SF", "tracking_no": "T"}
        )
    assert denied.status_code == 403 and denied.json()["error"]["reason"] == "forbidden"
    assert system.status_code == 202 and system.json()["requested_by"] == "erp-bot"
    assert picker.status_code == 202
    assert bad.status_code == 400 and "tracking_no" in bad.json()["error"]["detail"]
    assert unknown_shop.status_code == 404


@pytest.fixture
def platform_api():
    yield from fake_api()


async def test_real_douyin_client_ships_against_the_platform_fake(make_settings, platform_api):
    # no stand-in client: connectors.douyin's own signed call, to the local platform fake
    fake, url = platform_api
    fake.add_order(FakeOrder("douyin", "TB-1", "paid", created=datetime.now(UTC)))
    settings = make_settings(extra=shop_toml("douyin", url, name="tb"))
    store = Store(settings.db)
    for order_id in ("TB-1", "TB-404"):  # the second is unknown to the platform
        store.run(
            lambda c, oid=order_id: c.execute(
                "INSERT INTO orders (platform, shop, order_id, status, first_event_id, "
                "last_event_id, occurred_at, created_at, updated_at) "
                "VALUES ('douyin', 'tb', ?, 'paid', 0, 0, '', '', '')",
                (oid,),
            )
        )
    async with running(settings) as (_hub, client, _):
        for order_id in ("TB-1", "TB-404"):
            response = await client.post(
                f"/api/orders/douyin/tb/{order_id}/shipment",
                json={"carrier": "SF", "tracking_no": "SF1001"},
            )
            assert response.status_code == 202, response.text
        path = "/api/orders/douyin/tb/TB-{}"
        done = await wait_until(lambda: _settled(client, "done", path.format(1)), "TB-1 shipped")
        failed = await wait_until(
            lambda: _settled(client, "failed", path.format(404)), "TB-404 refused"
        )
    assert fake.shipments == [
        {"platform": "douyin", "order_id": "TB-1", "carrier": "SF", "tracking": "SF1001"}
    ]
    assert done[0]["code"] is None
    assert failed[0]["code"] and failed[0]["message"]  # the platform's own code and words
