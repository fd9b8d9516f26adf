"""The whole data path for one push, in-process (httpx.ASGITransport)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from hub import settings as settings_mod
from hub.runtime import Hub
from hub.store import queries
from tests.conftest import BASE_CONFIG
from tests.helpers import DEMO_SECRET, order_body, signed

pytestmark = pytest.mark.anyio

URL = "/webhooks/standard/acme"


async def last_request(hub: Hub) -> dict:
    rows = await hub.store.read(lambda c: queries.list_requests(c, limit=1))
    return rows[0]


async def test_a_signed_push_is_recorded_parsed_and_acked(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    body = order_body("order.paid", order_id=4881995531871913482, amount="199.90")
    r = await client.post(URL + "?x=1", content=body, headers=signed(body, msg_id="msg_a1"))
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True}
    req = await last_request(hub)
    assert req["outcome"] == "accepted" and req["events_new"] == 1
    assert req["body"] == body  # byte for byte
    assert req["query"] == "x=1" and req["peer"] == "127.0.0.1:50000"
    assert ("webhook-id", "msg_a1") in req["headers"]
    assert req["response_status"] == 200
    events = await hub.store.read(
        queries.events_for_order, "standard", "acme", "4881995531871913482"
    )
    assert [(e["kind"], e["amount"], e["currency"]) for e in events] == [("paid", "199.90", "CNY")]


async def test_same_push_five_times_is_one_event_five_recordings_five_acks(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    body = order_body()
    headers = signed(body)
    answers = [await client.post(URL, content=body, headers=headers) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    counts = await hub.store.read(queries.counts)
    assert counts["events"] == 1 and counts["requests"] == 5
    outcomes = await hub.store.read(queries.outcome_counts)
    assert outcomes == {"accepted": 1, "duplicate:duplicate": 4}


async def test_fifty_concurrent_copies_make_one_event(client: httpx.AsyncClient, hub: Hub) -> None:
    body = order_body(order_id="77")
    headers = signed(body)
    answers = await asyncio.gather(
        *(client.post(URL, content=body, headers=headers) for _ in range(50))
    )
    assert {a.status_code for a in answers} == {200}
    counts = await hub.store.read(queries.counts)
    assert counts == {"requests": 50, "events": 1, "orders": counts["orders"]}
    assert (await hub.store.read(queries.outcome_counts))["accepted"] == 1


async def test_concurrent_pushes_share_commits_and_each_ack_is_durable(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    bodies = [order_body(order_id=str(i)) for i in range(200)]
    answers = await asyncio.gather(
        *(client.post(URL, content=b, headers=signed(b)) for b in bodies)
    )
    assert all(a.status_code == 200 for a in answers)
    # group commit: fewer transactions than requests, some holding many
    assert hub.store.stats.max_batch_seen > 1
    assert hub.store.stats.batches < 200
    # durable: a fresh connection (another process would see the same) counts them all
    assert hub.store.run(queries.counts)["events"] == 200


async def test_message_id_reused_with_a_different_body_is_refused(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    first = order_body(order_id="1")
    second = order_body(order_id="1", amount="1.00")
    assert (
        await client.post(URL, content=first, headers=signed(first, msg_id="m1"))
    ).status_code == 200
    r = await client.post(URL, content=second, headers=signed(second, msg_id="m1"))
    assert r.status_code == 409
    assert r.json()["error"]["reason"] == "message_id_reused"
    req = await last_request(hub)
    assert (req["outcome"], req["reason"]) == ("rejected", "message_id_reused")
    assert req["body"] == second
    assert (await hub.store.read(queries.counts))["events"] == 1


async def test_a_redelivery_reserialised_by_its_sender_is_a_duplicate(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    """The event stores the body's JSON text as sent; a sender that retries with the same
    JSON in another key order or spacing redelivers the same message, not another one."""
    first = order_body(order_id="7")
    again = json.dumps(json.loads(first), sort_keys=True, indent=1).encode()
    assert again != first
    assert (
        await client.post(URL, content=first, headers=signed(first, msg_id="m7"))
    ).status_code == 200
    r = await client.post(URL, content=again, headers=signed(again, msg_id="m7"))
    assert r.status_code == 200
    req = await last_request(hub)
    assert (req["outcome"], req["reason"]) == ("duplicate", "duplicate")
    (event,) = await hub.store.read(queries.events_for_order, "standard", "acme", "7")
    assert event["payload"] == first.decode()  # byte for byte, as first delivered


def _bad_inputs() -> list[tuple[str, str, dict[str, str], bytes, int, str]]:
    good = order_body()
    h = signed(good)
    stale = signed(good, at=0 + 1_000_000_000)
    future = signed(good, at=4_000_000_000)
    wrong_secret = signed(good, secret="whsec_c29tZW9uZS1lbHNl")
    not_json = b"{nope"
    no_order = order_body(order_id=None)
    return [
        ("POST", "/webhooks/nowhere/acme", h, good, 404, "unknown_platform"),
        ("POST", "/webhooks/standard/ghost", h, good, 404, "unknown_shop"),
        ("GET", URL, {}, b"", 405, "method_not_allowed"),
        ("POST", URL, {**h, "content-type": "text/plain"}, good, 415, "unsupported_media_type"),
        (
            "POST",
            URL,
            {k: v for k, v in h.items() if k != "webhook-signature"},
            good,
            401,
            "missing_signature",
        ),
        ("POST", URL, {**h, "webhook-timestamp": "yesterday"}, good, 400, "bad_timestamp"),
        ("POST", URL, stale, good, 401, "stale_timestamp"),
        ("POST", URL, future, good, 401, "future_timestamp"),
        ("POST", URL, wrong_secret, good, 401, "bad_signature"),
        ("POST", URL, h, good.replace(b"199.00", b"1.00"), 401, "bad_signature"),  # tampered
        ("POST", URL, signed(not_json), not_json, 400, "malformed_body"),
        ("POST", URL, signed(no_order), no_order, 400, "malformed_body"),
        ("POST", URL, h, b"x" * 5000, 413, "body_too_large"),
    ]


# the cases are signed when the test runs, not when it is collected: a signature made at
# collection is stale (5 minutes) by the time a long suite reaches the test
BAD_INPUTS = [f"{n}-{case[5]}" for n, case in enumerate(_bad_inputs())]


@pytest.mark.parametrize("case", BAD_INPUTS)
async def test_every_bad_input_is_a_clear_4xx_and_is_recorded(
    client: httpx.AsyncClient, hub: Hub, case: str
) -> None:
    method, path, headers, body, status, reason = _bad_inputs()[BAD_INPUTS.index(case)]
    r = await client.request(method, path, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["error"]["reason"] == reason
    req = await last_request(hub)
    assert (req["outcome"], req["reason"], req["response_status"]) == ("rejected", reason, status)
    assert req["path"] == path
    assert (await hub.store.read(queries.counts))["events"] == 0


async def test_body_over_the_cap_without_content_length_is_cut_and_kept(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    async def chunks():
        for _ in range(10):
            yield b"y" * 1000

    r = await client.post(URL, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    req = await last_request(hub)
    assert req["body_truncated"] == 1 and req["body"] == b"y" * 4096


async def test_signature_keyed_with_secret_text_is_named_in_forensics(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    import base64
    import hashlib
    import hmac

    from tests.conftest import DEMO_SECRET

    body = order_body()
    h = signed(body)
    raw = hmac.new(
        DEMO_SECRET.encode(),
        f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + body,
        hashlib.sha256,
    ).digest()
    h["webhook-signature"] = "v1," + base64.b64encode(raw).decode()
    r = await client.post(URL, content=body, headers=h)
    assert r.status_code == 401
    req = await last_request(hub)
    assert "secret's text" in (req["forensics"] or "")


async def test_unknown_event_type_is_kept_as_other_and_counted(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    body = order_body("order.gift_wrapped")
    assert (await client.post(URL, content=body, headers=signed(body))).status_code == 200
    events = await hub.store.read(queries.events_for_order, "standard", "acme", "1001")
    assert [(e["kind"], e["platform_type"]) for e in events] == [("other", "order.gift_wrapped")]
    metrics = hub.metrics.render().decode()
    assert (
        'orderhook_events_unmapped_total{platform="standard",platform_type="order.gift_wrapped"} 1.0'
        in metrics
    )


async def test_orders_never_move_backwards(client: httpx.AsyncClient, hub: Hub) -> None:
    for kind in ("order.created", "order.shipped", "order.paid"):
        b = order_body(kind, order_id="9")
        assert (await client.post(URL, content=b, headers=signed(b))).status_code == 200
    for _ in range(100):
        order = await hub.store.read(queries.get_order, "standard", "acme", "9")
        if order and order["last_event_id"] == 3:
            break
        await asyncio.sleep(0.02)
    assert order is not None and order["status"] == "shipped"


async def test_metrics_count_requests_by_outcome(
    client: httpx.AsyncClient, hub: Hub, admin_token: str
) -> None:
    body = order_body()
    await client.post(URL, content=body, headers=signed(body))
    await client.post("/webhooks/standard/ghost", content=body, headers=signed(body))
    await client.post("/webhooks/jd/acme", content=body)  # acme is a shop, but not on jd
    r = await client.get("/metrics", headers={"authorization": f"Bearer {admin_token}"})
    assert r.status_code == 200
    text = r.text
    assert (
        'orderhook_requests_total{outcome="accepted",platform="standard",reason="",shop="acme"} 1.0'
        in text
    )
    assert 'shop="_unknown"' in text and "unknown_shop" in text
    assert 'platform="jd",reason="unknown_shop",shop="_unknown"' in text
    assert "orderhook_ack_seconds_bucket" in text
    assert "orderhook_writer_batch_size_bucket" in text
    assert "orderhook_writer_queue_depth" in text
    assert 'orderhook_worker_up{worker="ingest writer"} 1.0' in text
    assert 'orderhook_worker_restarts{worker="ingest writer"} 0.0' in text
    # CPU per process, to tell which one a burst is waiting for
    cpu = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("orderhook_cpu_seconds_total{")
    }
    assert {"hub", "ingest writer"} <= set(cpu), cpu
    assert cpu["hub"] > 0 and cpu["ingest writer"] > 0


async def test_recording_api_returns_the_documented_format(
    client: httpx.AsyncClient, hub: Hub, admin_token: str
) -> None:
    body = '{"type":"order.paid","data":{"order_id":"上海1"}}'.encode()
    await client.post(URL, content=body, headers=signed(body))
    auth = {"authorization": f"Bearer {admin_token}"}
    listing = (await client.get("/api/requests?limit=1", headers=auth)).json()
    one = (await client.get(f"/api/requests/{listing[0]['id']}", headers=auth)).json()
    assert one["format"] == "orderhook.recording/1"
    assert one["body"] == body.decode() and one["body_encoding"] == "utf-8"
    assert json.loads(one["response"]["body"]) == {"ok": True}


async def test_a_reloaded_config_is_what_the_next_push_is_judged_by(
    client: httpx.AsyncClient, hub: Hub, write_config: Callable[[str], Path]
) -> None:
    # the writer process judges pushes: a reload (hub.settings replaced) must reach it
    # before the next push, both ways: a shop added, a secret rotated
    body = order_body(order_id="9")
    r = await client.post("/webhooks/standard/later", content=body, headers=signed(body))
    assert r.status_code == 404 and r.json()["error"]["reason"] == "unknown_shop"
    rotated = "whsec_" + base64.b64encode(b"rotated-secret-of-32-bytes-long!").decode()
    hub.settings = settings_mod.load(
        write_config(
            f'[shops.later]\nplatform = "standard"\nsecret = "{DEMO_SECRET}"\n',
            base=BASE_CONFIG.replace(DEMO_SECRET, rotated),
        ),
        env={},
    )
    r = await client.post("/webhooks/standard/later", content=body, headers=signed(body))
    assert r.status_code == 200 and (await last_request(hub))["shop"] == "later"
    r = await client.post(URL, content=body, headers=signed(body))  # acme's old secret
    assert r.status_code == 401
    r = await client.post(URL, content=body, headers=signed(body, secret=rotated))
    assert r.status_code == 200
