"""The order state machine: events never move an order backwards, end states hold, and
every status-bearing event leaves a transition row with the event that caused it."""

from __future__ import annotations

import pytest

from hub import orders
from hub.store import orders_sql, queries
from tests.db_support import migrated, vm_steps
from tests.dispatch_support import eventually, push

pytestmark = pytest.mark.anyio

KEY = ("standard", "acme", "8800001")


async def transitions(hub, key=KEY):
    return await hub.store.read(orders_sql.transitions, key)


async def status_after(hub, n_transitions: int, key=KEY) -> str:
    async def ready():
        rows = await transitions(hub, key)
        return len(rows) >= n_transitions

    await eventually(ready)
    order = await hub.store.read(queries.get_order, *key)
    return order["status"]


async def test_flow_moves_forward_and_records_each_step(hub, client):
    for kind in ("created", "paid", "shipped"):
        await push(client, kind, KEY[2], province="广东")
    assert await status_after(hub, 3) == "shipped"
    rows = await transitions(hub)
    assert [(r["from_status"], r["to_status"], r["applied"]) for r in rows] == [
        (None, "created", 1),
        ("created", "paid", 1),
        ("paid", "shipped", 1),
    ]
    assert all(r["event_id"] for r in rows)
    assert rows[1]["cause"] == "event:order.paid"


async def test_out_of_order_event_does_not_move_back(hub, client):
    await push(client, "shipped", KEY[2])
    await push(client, "paid", KEY[2])
    assert await status_after(hub, 2) == "shipped"
    late = (await transitions(hub))[-1]
    assert (late["to_status"], late["applied"]) == ("paid", 0)
    assert "out of order" in late["note"]


async def test_late_paid_after_cancelled_is_evidence_only(hub, client):
    await push(client, "created", KEY[2])
    await push(client, "cancelled", KEY[2])
    await push(client, "paid", KEY[2])
    assert await status_after(hub, 3) == "cancelled"
    late = (await transitions(hub))[-1]
    assert late["to_status"] == "paid" and late["applied"] == 0
    assert "kept as evidence" in late["note"]
    events = await hub.store.read(queries.events_for_order, *KEY)
    assert late["event_id"] == events[-1]["id"]  # the late event itself is the evidence


async def test_cancel_stops_the_flow_from_any_state(hub, client):
    await push(client, "paid", KEY[2])
    await push(client, "shipped", KEY[2])
    await push(client, "refunded", KEY[2])
    await push(client, "shipped", KEY[2], amount="1.00")
    assert await status_after(hub, 4) == "refunded"
    order = await hub.store.read(queries.get_order, *KEY)
    assert order["amount"] == "99.00"  # the ignored late event's amount changed nothing


def test_may_move_rules():
    assert orders.may_move(None, "paid")
    assert orders.may_move("paid", "assigned")
    assert not orders.may_move("assigned", "paid")
    assert orders.may_move("shipped", "cancelled")
    assert orders.may_move("cancelled", "refunded")
    assert not orders.may_move("refunded", "cancelled")
    assert not orders.may_move("cancelled", "shipped")
    assert not orders.may_move("paid", "paid")


async def test_facts_from_later_events_merge(hub, client):
    await push(client, "paid", KEY[2], province="广东", items=[{"sku": "A1", "category": "phones"}])
    await push(client, "address_changed", KEY[2], province="浙江", city="杭州")

    async def merged():
        state = await hub.store.read(orders_sql.order_state, KEY)
        return state if state and state["facts"].get("city") else None

    facts = (await eventually(merged))["facts"]
    assert facts == {"province": "浙江", "city": "杭州", "skus": ["A1"], "categories": ["phones"]}


def test_an_order_id_is_found_in_every_shop_without_reading_every_order():
    """An ERP reports a shipment by the platform's order id alone; at a million orders,
    reading them all took 160 ms a report."""
    conn = migrated()
    shops = [("douyin", "flagship"), ("jd", "outlet"), ("taobao", "flagship"), ("taobao", "tmall")]
    rows = [
        orders_sql.order_row(
            (platform, shop, f"{n:08d}"),
            status="paid",
            amount="1.00",
            currency="CNY",
            facts={"n": n},
            first_event_id=n,
            last_event_id=n,
            occurred_at="2026-11-11",
            now="2026-11-11",
        )
        for platform, shop in shops
        for n in range(1_500)
    ]
    orders_sql.save_orders(conn, rows)
    orders_sql.save_orders(conn, [(*rows[0][:2], "shared", *rows[0][3:])])  # douyin/flagship
    orders_sql.save_orders(conn, [(*rows[-1][:2], "shared", *rows[-1][3:])])  # taobao/tmall

    with vm_steps(conn, 100) as steps:
        found = orders_sql.find_orders(conn, "shared")
        one = orders_sql.find_orders(conn, "00000042")

    assert [(o["platform"], o["shop"]) for o in found] == [
        ("douyin", "flagship"),
        ("taobao", "tmall"),
    ]
    assert [(o["platform"], o["shop"], o["facts"]) for o in one] == [
        (platform, shop, {"n": 42}) for platform, shop in shops
    ]
    assert orders_sql.find_orders(conn, "nowhere") == []
    assert orders_sql.shops_with_orders(conn) == shops
    # reading the 6,000 orders alone takes ~25,000 VM steps
    assert steps.ticks < 20, steps
