"""A push becomes a routed task owned by the least-loaded operator, in the same second;
operators claim, release and complete it through the API; the group queue waits when
everyone is full and is handed out as capacity frees up; every decision leaves a row."""

from __future__ import annotations

import json

import pytest

from hub import settings as settings_mod
from hub.auth import issue_token
from hub.store import Store, dispatch_sql, orders_sql
from tests.dispatch_support import DISPATCH_TOML, eventually, push

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(write_config):
    return settings_mod.load(write_config(DISPATCH_TOML), env={})


@pytest.fixture
def tokens(settings):
    store = Store(settings.db)
    return {
        name: store.run(issue_token, name, role)
        for name, role in (
            ("ana", "operator"),
            ("bo", "operator"),
            ("cy", "operator"),
            ("sue", "supervisor"),
            ("vic", "viewer"),
        )
    }


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def task_of(hub, order_id: str, *, state: str | None = None):
    async def ready():
        task = await hub.store.read(dispatch_sql.task_for_order, ("standard", "acme", order_id))
        return task if task and (state is None or task["state"] == state) else None

    return await eventually(ready)


async def test_paid_push_is_routed_by_rule_and_assigned(hub, client):
    await push(client, "paid", "9001", amount="800.00", province="广东")
    task = await task_of(hub, "9001", state="assigned")
    assert (task["grp"], task["rule"], task["priority"]) == ("vip", "big-south", 5)
    assert task["assignee"] in ("ana", "cy")
    order = await hub.store.read(orders_sql.order_state, ("standard", "acme", "9001"))
    assert order["status"] == "assigned"
    assert (order["route_group"], order["route_rule"]) == ("vip", "big-south")
    log = await hub.store.read(
        lambda c: dispatch_sql.decisions(c, key=("standard", "acme", "9001"))
    )
    decided = {row["decision"]: row for row in log}
    assert "rule 'big-south' matched" in decided["routed"]["detail"]
    assert "least loaded in vip" in decided["assigned"]["detail"]
    transitions = await hub.store.read(orders_sql.transitions, ("standard", "acme", "9001"))
    assert transitions[-1]["cause"] == f"task:{task['id']} assigned to {task['assignee']}"


async def test_no_rule_matches_goes_to_default_group(hub, client):
    await push(client, "paid", "9002", amount="10.00", province="上海")
    task = await task_of(hub, "9002")
    assert (task["grp"], task["rule"]) == ("general", None)


async def test_created_only_orders_make_no_task(hub, client):
    await push(client, "created", "9003")
    await push(client, "paid", "9004")
    await task_of(hub, "9004")
    assert await hub.store.read(dispatch_sql.task_for_order, ("standard", "acme", "9003")) is None


async def test_least_loaded_then_round_robin_and_never_over_capacity(hub, client):
    # general: ana (cap 2) and bo (cap 2); equal loads alternate
    for n in range(5):
        await push(client, "paid", f"95{n}", amount="10.00")
    tasks = [await task_of(hub, f"95{n}") for n in range(5)]
    holders = [t["assignee"] for t in tasks]
    assert sorted(h for h in holders if h) == ["ana", "ana", "bo", "bo"]
    assert holders[0] != holders[1]  # a tie goes to whoever waited longest
    assert tasks[4]["state"] == "queued" and tasks[4]["assignee"] is None
    loads = {o["name"]: o["open"] for o in await hub.store.read(dispatch_sql.operator_loads)}
    assert loads["ana"] <= 2 and loads["bo"] <= 2


async def test_queue_is_handed_out_when_capacity_frees(hub, client, tokens):
    for n in range(5):
        await push(client, "paid", f"96{n}", amount="10.00")
    waiting = await task_of(hub, "964")
    assert waiting["state"] == "queued"
    given = [await task_of(hub, f"96{n}") for n in range(4)]
    mine = [t for t in given if t["assignee"] == "bo"]
    task_id = mine[0]["id"]
    r = await client.post(f"/api/tasks/{task_id}/claim", headers=auth(tokens["bo"]))
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "claimed"
    r = await client.post(f"/api/tasks/{task_id}/complete", headers=auth(tokens["bo"]))
    assert r.status_code == 200 and r.json()["state"] == "done"
    handed = await task_of(hub, "964", state="assigned")
    assert handed["assignee"] == "bo"


async def test_claim_rules_and_errors(hub, client, tokens):
    await push(client, "paid", "9701", amount="10.00")
    task = await task_of(hub, "9701", state="assigned")
    holder = task["assignee"]
    other = "bo" if holder == "ana" else "ana"
    r = await client.post(f"/api/tasks/{task['id']}/claim", headers=auth(tokens[other]))
    assert (r.status_code, r.json()["error"]["reason"]) == (409, "assigned_to_other")
    r = await client.post(f"/api/tasks/{task['id']}/complete", headers=auth(tokens[holder]))
    assert (r.status_code, r.json()["error"]["reason"]) == (409, "not_claimed")
    r = await client.post(f"/api/tasks/{task['id']}/claim", headers=auth(tokens["cy"]))
    assert r.json()["error"]["reason"] in ("assigned_to_other", "not_in_group")
    r = await client.post("/api/tasks/999999/claim", headers=auth(tokens[holder]))
    assert (r.status_code, r.json()["error"]["reason"]) == (404, "not_found")
    r = await client.post("/api/tasks/abc/claim", headers=auth(tokens[holder]))
    assert (r.status_code, r.json()["error"]["reason"]) == (400, "bad_id")
    r = await client.post(f"/api/tasks/{task['id']}/claim", headers=auth(tokens["vic"]))
    assert (r.status_code, r.json()["error"]["reason"]) == (403, "forbidden")
    r = await client.post(f"/api/tasks/{task['id']}/claim")
    assert r.status_code == 401


async def test_release_goes_to_someone_else(hub, client, tokens):
    await push(client, "paid", "9801", amount="10.00")
    task = await task_of(hub, "9801", state="assigned")
    holder = task["assignee"]
    r = await client.post(f"/api/tasks/{task['id']}/release", headers=auth(tokens[holder]))
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["state"] == "assigned" and again["assignee"] not in (None, holder)


async def test_operator_lists_own_and_group_queue(hub, client, tokens):
    await push(client, "paid", "9901", amount="10.00")
    task = await task_of(hub, "9901", state="assigned")
    r = await client.get("/api/tasks", headers=auth(tokens[task["assignee"]]))
    assert [t["order_id"] for t in r.json()] == ["9901"]
    r = await client.get("/api/tasks", headers=auth(tokens["cy"]))  # vip only
    assert r.json() == []
    r = await client.get("/api/tasks?group=general", headers=auth(tokens["sue"]))
    assert [t["id"] for t in r.json()] == [task["id"]]


async def test_away_operator_gets_nothing_and_back_gets_the_queue(hub, client, tokens):
    for who in ("ana", "bo"):
        r = await client.post(
            f"/api/operators/{'me'}/status", headers=auth(tokens[who]), json={"status": "away"}
        )
        assert r.status_code == 200 and r.json()["status"] == "away"
    await push(client, "paid", "9951", amount="10.00")
    assert (await task_of(hub, "9951"))["state"] == "queued"
    r = await client.post(
        "/api/operators/bo/status", headers=auth(tokens["ana"]), json={"status": "working"}
    )
    assert (r.status_code, r.json()["error"]["reason"]) == (403, "forbidden")
    r = await client.post(
        "/api/operators/bo/status", headers=auth(tokens["sue"]), json={"status": "working"}
    )
    assert r.status_code == 200
    assert (await task_of(hub, "9951", state="assigned"))["assignee"] == "bo"


async def test_high_value_order_notifies_group_channel(hub, client):
    await push(client, "paid", "9961", amount="1800.00", province="浙江")
    task = await task_of(hub, "9961")
    rows = await hub.store.read(
        lambda c: c.execute("SELECT kind, target, payload FROM outbox").fetchall()
    )
    assert [(k, t) for k, t, _ in rows] == [("notify", "vip-dingtalk")]
    payload = json.loads(rows[0][2])
    assert set(payload) == {"title", "text", "severity"}
    assert "9961" in payload["title"] and task["grp"] == "vip"


async def test_cancel_closes_the_task_and_frees_capacity(hub, client):
    await push(client, "paid", "9971", amount="10.00")
    task = await task_of(hub, "9971", state="assigned")
    await push(client, "cancelled", "9971")
    closed = await task_of(hub, "9971", state="cancelled")
    assert closed["close_reason"] == "order cancelled" and closed["id"] == task["id"]


async def test_supervisor_takes_escalated_work_and_hands_it_to_someone(hub, client, tokens):
    from hub.dispatch import escalate, state
    from hub.model import utcnow

    await push(client, "paid", "9981", amount="10")
    task = await task_of(hub, "9981", state="assigned")

    def backdate(conn):
        conn.execute(
            "UPDATE tasks SET waiting_since = '2020-01-01T00:00:00.000000Z' WHERE id = ?",
            (task["id"],),
        )

    await hub.store.write(backdate)
    await hub.store.write(escalate.escalate_due, state.of(hub).config, utcnow())
    r = await client.post(f"/api/tasks/{task['id']}/claim", headers=auth(tokens["bo"]))
    assert (r.status_code, r.json()["error"]["reason"]) == (403, "supervisor_queue")
    r = await client.get("/api/tasks?queue=supervisor", headers=auth(tokens["sue"]))
    assert [t["id"] for t in r.json()] == [task["id"]]
    r = await client.post(
        f"/api/tasks/{task['id']}/assign", headers=auth(tokens["bo"]), json={"operator": "bo"}
    )
    assert r.status_code == 403
    r = await client.post(
        f"/api/tasks/{task['id']}/assign", headers=auth(tokens["sue"]), json={"operator": "ghost"}
    )
    assert (r.status_code, r.json()["error"]["reason"]) == (404, "no_operator")
    r = await client.post(
        f"/api/tasks/{task['id']}/assign", headers=auth(tokens["sue"]), json={"operator": "bo"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["assignee"], r.json()["queue"]) == (
        "assigned",
        "bo",
        "group",
    )
    r = await client.post(f"/api/tasks/{task['id']}/claim", headers=auth(tokens["bo"]))
    assert r.json()["state"] == "claimed"
    r = await client.get(
        "/api/dispatch/log?platform=standard&shop=acme&order_id=9981", headers=auth(tokens["vic"])
    )
    decisions = [row["decision"] for row in r.json()]
    assert decisions[:4] == ["claimed", "assigned", "notified", "escalated"]
    assert "handed to bo by supervisor sue" in r.json()[1]["detail"]


async def test_operator_status_refusals_and_load_listing(hub, client, tokens):
    r = await client.post(
        "/api/operators/me/status", headers=auth(tokens["ana"]), json={"status": "napping"}
    )
    assert (r.status_code, r.json()["error"]["reason"]) == (400, "bad_status")
    r = await client.post("/api/operators/me/status", headers=auth(tokens["ana"]), content=b"{")
    assert (r.status_code, r.json()["error"]["reason"]) == (400, "bad_body")
    r = await client.get("/api/operators", headers=auth(tokens["ana"]))
    assert {(o["name"], o["capacity"], o["status"]) for o in r.json()} == {
        ("ana", 2, "working"),
        ("bo", 2, "working"),
        ("cy", 1, "working"),
    }


async def test_going_away_hands_unclaimed_work_to_someone_else(hub, client, tokens):
    await push(client, "paid", "9991", amount="10")
    task = await task_of(hub, "9991", state="assigned")
    holder = task["assignee"]
    other = "bo" if holder == "ana" else "ana"
    r = await client.post(
        "/api/operators/me/status", headers=auth(tokens[holder]), json={"status": "away"}
    )
    assert r.status_code == 200
    moved = await task_of(hub, "9991", state="assigned")
    assert moved["assignee"] == other and moved["waiting_since"] == task["waiting_since"]
    log = await hub.store.read(
        lambda c: dispatch_sql.decisions(c, key=("standard", "acme", "9991"))
    )
    withdrawn = next(row for row in log if row["decision"] == "withdrawn")
    assert withdrawn["detail"] == f"{holder} is away; back in the queue unclaimed"


async def test_shipping_closes_the_task_as_done(hub, client):
    await push(client, "paid", "9992", amount="10")
    await task_of(hub, "9992", state="assigned")
    await push(client, "shipped", "9992")
    done = await task_of(hub, "9992", state="done")
    assert done["close_reason"] == "order shipped"


async def test_claiming_from_the_group_queue_respects_group_and_capacity(hub, client, tokens):
    for n in range(5):  # general: ana 2 + bo 2 assigned, one waits in the queue
        await push(client, "paid", f"93{n}", amount="10")
    waiting = await task_of(hub, "934")
    assert waiting["state"] == "queued"
    r = await client.post(f"/api/tasks/{waiting['id']}/claim", headers=auth(tokens["cy"]))
    assert (r.status_code, r.json()["error"]["reason"]) == (403, "not_in_group")
    r = await client.post(f"/api/tasks/{waiting['id']}/claim", headers=auth(tokens["ana"]))
    assert (r.status_code, r.json()["error"]["reason"]) == (409, "over_capacity")
    assert "ana has 2/2 open tasks" in r.json()["error"]["detail"]
    r = await client.post(f"/api/tasks/{waiting['id']}/claim", headers=auth(tokens["sue"]))
    assert r.status_code == 200 and r.json()["assignee"] == "sue"  # supervisors may take it
