"""The post-commit stage works a batch of events at a time: what batching could break.

The hub here runs no background stages; pushes go through the real ingest path and the
stage is then run by hand with a chosen batch size, so which events share a batch is
decided by the test, not by timing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub import settings as settings_mod
from hub.dispatch import engine, state
from hub.runtime import Hub
from hub.store import dispatch_sql, orders_sql, queries
from tests.dispatch_support import DISPATCH_TOML, push

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(write_config):
    return settings_mod.load(write_config(DISPATCH_TOML), env={})


@pytest.fixture
async def hub(settings) -> AsyncIterator[Hub]:
    idle = Hub(settings, services=[])
    async with idle.running():
        await idle.store.write(state.sync, state.of(idle).config)
        yield idle


async def stage(hub: Hub, limit: int) -> engine.Result:
    return await hub.store.write(engine.process, state.of(hub).config, limit)


def key(order_id: str) -> tuple[str, str, str]:
    return ("standard", "acme", order_id)


async def steps(hub: Hub, order_id: str) -> list[tuple]:
    rows = await hub.store.read(orders_sql.transitions, key(order_id))
    return [(r["from_status"], r["to_status"], r["applied"], r["note"]) for r in rows]


async def decisions(hub: Hub, order_id: str) -> list[str]:
    rows = await hub.store.read(lambda c: dispatch_sql.decisions(c, key=key(order_id)))
    return [r["decision"] for r in reversed(rows)]


async def order(hub: Hub, order_id: str) -> dict:
    row = await hub.store.read(queries.get_order, *key(order_id))
    assert row is not None
    return row


async def test_events_of_one_order_in_one_batch_each_see_the_one_before(hub, client):
    await push(client, "created", "5001", amount="50.00", province="上海")
    await push(client, "paid", "5001", amount="60.00")
    await push(client, "address_changed", "5001", amount="61.00", city="杭州")
    await push(client, "shipped", "5001", amount="62.00")
    await push(client, "paid", "5002", amount="10.00")
    result = await stage(hub, 50)
    assert result.applied == 5
    assert await steps(hub, "5001") == [
        (None, "created", 1, None),
        ("created", "paid", 1, None),
        ("paid", "shipped", 1, None),
    ]
    row = await order(hub, "5001")
    assert (row["status"], row["amount"]) == ("shipped", "62.00")
    events = await hub.store.read(queries.events_for_order, *key("5001"))
    assert (row["first_event_id"], row["last_event_id"]) == (events[0]["id"], events[-1]["id"])
    facts = (await hub.store.read(orders_sql.order_state, key("5001")))["facts"]
    assert (facts["province"], facts["city"]) == ("上海", "杭州")
    # paid then shipped in the same batch: the task is made and closed before anyone
    # could be given it; the other order's task is handed out
    task = await hub.store.read(dispatch_sql.task_for_order, key("5001"))
    assert (task["state"], task["close_reason"], task["assignee"]) == (
        "done",
        "order shipped",
        None,
    )
    assert await decisions(hub, "5001") == ["routed", "closed"]
    assert result.routed == [task["id"], task["id"] + 1] and result.closed == [task["id"]]
    assert [a.task_id for a in result.assigned] == [task["id"] + 1]


async def test_out_of_order_events_in_one_batch_never_move_back(hub, client):
    await push(client, "shipped", "5101", amount="70.00")
    await push(client, "paid", "5101", amount="1.00")
    await push(client, "created", "5101", amount="2.00")
    await stage(hub, 50)
    assert await steps(hub, "5101") == [
        (None, "shipped", 1, None),
        (
            "shipped",
            "paid",
            0,
            "arrived after shipped (out of order); does not move the order back",
        ),
        (
            "shipped",
            "created",
            0,
            "arrived after shipped (out of order); does not move the order back",
        ),
    ]
    row = await order(hub, "5101")
    assert (row["status"], row["amount"]) == ("shipped", "70.00")
    # the late paid moved nothing, so it routed nothing
    assert await hub.store.read(dispatch_sql.task_for_order, key("5101")) is None


async def test_paid_after_cancelled_in_one_batch_is_evidence_only(hub, client):
    await push(client, "paid", "5201", amount="99.00")
    await push(client, "cancelled", "5201", amount="99.00")
    await push(client, "paid", "5201", amount="1.00")
    result = await stage(hub, 50)
    assert await steps(hub, "5201") == [
        (None, "paid", 1, None),
        ("paid", "cancelled", 1, None),
        ("cancelled", "paid", 0, "order is cancelled; kept as evidence, changes nothing"),
    ]
    row = await order(hub, "5201")
    assert (row["status"], row["amount"]) == ("cancelled", "99.00")
    task = await hub.store.read(dispatch_sql.task_for_order, key("5201"))
    assert (task["state"], task["close_reason"]) == ("cancelled", "order cancelled")
    assert result.assigned == [] and await decisions(hub, "5201") == ["routed", "closed"]


async def test_one_order_split_across_batches_ends_as_in_one_batch(hub, client):
    flow = [
        ("created", "10.00", {"province": "广东"}),
        # > 500 in 广东: the big-south rule, vip; >= 1000 is high value there: notified
        ("paid", "1200.00", {}),
        ("address_changed", "1200.00", {"province": "浙江"}),
        ("shipped", "1200.00", {}),
        ("refunded", "1200.00", {}),
    ]
    for kind, amount, facts in flow:
        await push(client, kind, "5301", amount=amount, **facts)
    # two events a batch: the order, its transitions and its task carry over the cut
    applied = [(await stage(hub, 2)).applied for _ in range(3)]
    assert applied == [2, 2, 1]
    for kind, amount, facts in flow:
        await push(client, kind, "5302", amount=amount, **facts)
    assert (await stage(hub, 50)).applied == 5

    split, whole = await order(hub, "5301"), await order(hub, "5302")
    for column in ("status", "amount", "currency", "facts", "route_group", "route_rule"):
        assert split[column] == whole[column], column
    assert split["status"] == "refunded" and split["route_group"] == "vip"
    # split: the first batch ended with paid, so its task was handed out before the
    # second batch shipped the order and closed the task
    assert await steps(hub, "5301") == [
        (None, "created", 1, None),
        ("created", "paid", 1, None),
        ("paid", "assigned", 1, None),
        ("assigned", "shipped", 1, None),
        ("shipped", "refunded", 1, None),
    ]
    assert await decisions(hub, "5301") == ["routed", "notified", "assigned", "closed"]
    # whole: paid and shipped in one batch, nothing left to hand out
    assert await steps(hub, "5302") == [
        (None, "created", 1, None),
        ("created", "paid", 1, None),
        ("paid", "shipped", 1, None),
        ("shipped", "refunded", 1, None),
    ]
    assert await decisions(hub, "5302") == ["routed", "notified", "closed"]
    for order_id in ("5301", "5302"):
        task = await hub.store.read(dispatch_sql.task_for_order, key(order_id))
        assert (task["grp"], task["state"], task["close_reason"]) == (
            "vip",
            "done",
            "order shipped",
        )
    cursor = await hub.store.read(queries.cursor, "orders")
    events = await hub.store.read(queries.events_for_order, *key("5302"))
    assert cursor == events[-1]["id"]


async def test_hand_out_in_one_batch_keeps_loads_current(hub, client):
    # general: ana (capacity 2) and bo (capacity 2); five paid orders in one batch
    for n in range(5):
        await push(client, "paid", f"540{n}", amount="10.00")
    result = await stage(hub, 50)
    holders = [a.operator for a in result.assigned]
    assert sorted(holders) == ["ana", "ana", "bo", "bo"]
    assert holders[0] != holders[1] and holders[2] != holders[3]  # round robin among equals
    assert [a.why.split(" had ")[1][:3] for a in result.assigned] == ["0/2", "0/2", "1/2", "1/2"]
    waiting = await hub.store.read(dispatch_sql.task_for_order, key("5404"))
    assert (waiting["state"], waiting["assignee"]) == ("queued", None)
    for a in result.assigned:
        task = await hub.store.read(dispatch_sql.get_task, a.task_id)
        assert (task["state"], task["assignee"]) == ("assigned", a.operator)
        row = await order(hub, task["order_id"])
        assert row["status"] == "assigned"
        assert (await steps(hub, task["order_id"]))[-1][:3] == ("paid", "assigned", 1)
    # the round robin is stored: whoever got the last task waits longest for the next
    loads = {o["name"]: o for o in await hub.store.read(dispatch_sql.operator_loads)}
    assert loads[holders[-1]]["last_assigned_seq"] > loads[holders[-2]]["last_assigned_seq"]


async def test_failure_mid_batch_leaves_nothing_half_applied(hub, client, monkeypatch):
    for n in range(3):
        await push(client, "paid", f"550{n}", amount="10.00")

    def broken(conn, rows):
        raise RuntimeError("disk said no")

    # the decision log is written last, after orders, transitions and tasks
    monkeypatch.setattr(dispatch_sql, "log_rows", broken)
    with pytest.raises(RuntimeError, match="disk said no"):
        await stage(hub, 50)
    assert await hub.store.read(queries.cursor, "orders") == 0
    for n in range(3):
        assert await hub.store.read(queries.get_order, *key(f"550{n}")) is None
        assert await steps(hub, f"550{n}") == []
        assert await hub.store.read(dispatch_sql.task_for_order, key(f"550{n}")) is None

    monkeypatch.undo()
    assert (await stage(hub, 50)).applied == 3  # the same events, applied once
    for n in range(3):
        assert await steps(hub, f"550{n}") == [
            (None, "paid", 1, None),
            ("paid", "assigned", 1, None),
        ]
        assert await decisions(hub, f"550{n}") == ["routed", "assigned"]
