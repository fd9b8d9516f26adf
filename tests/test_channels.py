"""The channel service end to end: a real hub holding WebSockets to the local fakes of
Taobao TMC and Pinduoduo on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from hub import channels
from hub.app import create_app
from hub.auth import issue_token
from hub.runtime import Hub
from hub.settings import load
from hub.store import Store
from sandbox.fakes.pinduoduo import FakePmc
from sandbox.fakes.taobao import FakeTmc

pytestmark = pytest.mark.anyio

APP_KEY, TB_SECRET = "12345678", "tmc-test-secret"
SELLER_ID, NICK = 2200123456, "acme旗舰店"
CLIENT_ID, PDD_SECRET = "pdd-client", "pdd-test-secret"
MALL_ID = 171504183
# fast reconnects; no reconciliation: these shops' API would be the real gateway
FAST = "reconnect_seconds = 0.05, reconnect_max_seconds = 0.2, reconcile = false"


def taobao_shop(url: str, secret: str = TB_SECRET, extra: str = "") -> str:
    return f"""
[shops.acme-tmall]
platform = "taobao"
app_key = "{APP_KEY}"
secret = "{secret}"
message_url = "{url}/"
options = {{ seller_id = {SELLER_ID}, pull_seconds = 0.2, {FAST}{extra} }}
"""


def pdd_shop(url: str, secret: str = PDD_SECRET, extra: str = "") -> str:
    return f"""
[shops.acme-pdd]
platform = "pinduoduo"
app_key = "{CLIENT_ID}"
secret = "{secret}"
message_url = "{url}"
options = {{ mall_id = {MALL_ID}, heartbeat_seconds = 0.2, {FAST}{extra} }}
"""


@asynccontextmanager
async def running(config: Path) -> AsyncIterator[Hub]:
    hub = Hub(load(config, env={}))
    async with hub.running():
        yield hub


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def last_error(hub: Hub) -> str | None:
    return next((row["last_error"] for row in channels.state(hub)), None)


def committed_requests(db: Path) -> list[tuple[Any, ...]]:
    """The hub's recorded requests, or [] while its database is still being created."""
    try:
        return rows(db, "SELECT outcome FROM requests")
    except sqlite3.OperationalError:
        return []


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := check()):
            await asyncio.sleep(0.02)
        return value


def trade(tid: int, status: str = "WAIT_SELLER_SEND_GOODS") -> dict[str, Any]:
    return {"tid": tid, "oid": tid, "status": status, "payment": "128.50", "seller_nick": NICK}


# One delivery, one Confirm: the fakes' redelivery (2 s by default) must not depend on how
# fast a loaded machine commits (fsync took over 2 s under load and the message came twice).
ONCE = 30.0


async def test_taobao_message_is_committed_before_it_is_confirmed(write_config, tmp_path):
    async with FakeTmc(APP_KEY, TB_SECRET, redeliver_seconds=ONCE) as fake:
        config = write_config(taobao_shop(fake.url))
        db = tmp_path / "hub.db"
        seen_at_confirm: list[list[tuple[Any, ...]]] = []
        confirm = fake.mailbox.confirm

        def confirm_and_look(message_id: int) -> None:
            # what a reader sees in the hub's database at the moment TMC gets the Confirm
            seen_at_confirm.append(rows(db, "SELECT outcome, channel, method FROM requests"))
            confirm(message_id)

        fake.mailbox.confirm = confirm_and_look  # type: ignore[method-assign]
        async with running(config) as hub:
            tid = 4_109_876_543_210_987_654  # beyond 2**53
            mid = fake.publish(
                "taobao_trade_TradeBuyerPay", trade(tid), user_id=SELLER_ID, nick=NICK
            )
            await fake.mailbox.wait_confirmed([mid])
            state = {s["shop"]: s for s in channels.state(hub)}["acme-tmall"]
            assert state["connected"] and state["messages"] == 1 and state["lag_seconds"] >= 0
            metrics = hub.metrics.render().decode()
        assert seen_at_confirm == [[("accepted", "tmc", "WS")]]
        assert 'orderhook_channel_connected{platform="taobao",shop="acme-tmall"}' in metrics
        events = rows(db, "SELECT kind, order_id, amount, platform_type, shop FROM events")
        assert events == [("paid", str(tid), "128.50", "taobao_trade_TradeBuyerPay", "acme-tmall")]
        assert fake.pulls >= 1  # the hub asked for the backlog


async def test_taobao_gzip_content_and_unknown_seller(write_config, tmp_path):
    async with FakeTmc(APP_KEY, TB_SECRET, redeliver_seconds=ONCE) as fake:
        async with running(write_config(taobao_shop(fake.url))):
            ok = fake.publish(
                "taobao_refund_RefundCreated",
                {
                    "refund_id": 77,
                    "tid": 42,
                    "oid": 42,
                    "refund_fee": "10.00",
                    "modified": "2026-11-11 00:00:05",
                },
                user_id=SELLER_ID,
                nick=NICK,
                gzip=True,
            )
            stranger = fake.publish("taobao_trade_TradeCreate", trade(43), user_id=1, nick="other")
            await fake.mailbox.wait_confirmed([ok])
            await fake.mailbox.wait_failed(1)
        assert fake.mailbox.failed[0][0] == stranger
        assert fake.mailbox.failed[0][1].startswith("unknown_seller")
        assert stranger not in fake.mailbox.confirmed  # never silently confirmed
    db = tmp_path / "hub.db"
    assert rows(db, "SELECT kind, order_id, amount, occurred_at FROM events") == [
        ("refund_requested", "42", "10.00", "2026-11-10T16:00:05.000000Z")  # GMT+8 -> UTC
    ]
    assert rows(db, "SELECT outcome, reason, shop FROM requests WHERE outcome = 'rejected'") == [
        ("rejected", "unknown_seller", None)
    ]


async def test_taobao_bad_content_is_failed_not_confirmed(write_config, tmp_path):
    async with FakeTmc(APP_KEY, TB_SECRET, redeliver_seconds=ONCE) as fake:
        async with running(write_config(taobao_shop(fake.url))):
            bad = fake.publish(
                "taobao_trade_TradeCreate", "{not json", user_id=SELLER_ID, nick=NICK
            )
            await fake.mailbox.wait_failed(1)
        assert fake.mailbox.failed[0][0] == bad and "malformed_body" in fake.mailbox.failed[0][1]
        assert not fake.mailbox.confirmed
    reason = rows(tmp_path / "hub.db", "SELECT outcome, reason, detail FROM requests")
    assert reason[0][:2] == ("rejected", "malformed_body") and "JSON" in reason[0][2]


async def test_hub_killed_between_commit_and_confirm_stores_once(
    write_config, tmp_path, monkeypatch
):
    async with FakeTmc(APP_KEY, TB_SECRET, redeliver_seconds=ONCE) as fake:
        # the dead hub's unanswered message is abandoned at once, not after the 5 s drain
        config = write_config(taobao_shop(fake.url, extra=", drain_seconds = 0.05"))
        committed = asyncio.Event()
        real_receive = channels.receive

        async def crash_after_commit(hub, st, delivery):  # type: ignore[no-untyped-def]
            await real_receive(hub, st, delivery)  # recorded and committed ...
            committed.set()
            await asyncio.Event().wait()  # ... and the hub dies before the Confirm goes out

        monkeypatch.setattr(channels, "receive", crash_after_commit)
        mid = fake.publish(
            "taobao_trade_TradeCreate", trade(7, "WAIT_BUYER_PAY"), user_id=SELLER_ID, nick=NICK
        )
        async with running(config):
            await asyncio.wait_for(committed.wait(), 10)
        assert not fake.mailbox.confirmed
        monkeypatch.setattr(channels, "receive", real_receive)
        async with running(config):  # a new hub on the same database
            await fake.mailbox.wait_confirmed([mid])
        assert fake.mailbox.sent[mid] == 2
    db = tmp_path / "hub.db"
    assert rows(db, "SELECT count(*) FROM events") == [(1,)]
    assert rows(db, "SELECT outcome FROM requests ORDER BY id") == [("accepted",), ("duplicate",)]


async def test_taobao_bad_signature_is_refused_and_reported(write_config, tmp_path):
    async with FakeTmc(APP_KEY, TB_SECRET) as fake:
        async with running(write_config(taobao_shop(fake.url, secret="wrong"))) as hub:
            await fake.wait_connects(2)  # refused, and retried with backoff
            state = await eventually(lambda: last_error(hub))
        assert fake.connects[0] == (False, "invalid sign")
        assert not fake.connections
    assert state == "connect_refused: status 0: invalid sign"
    sessions = rows(tmp_path / "hub.db", "SELECT opened_at, error FROM channel_sessions")
    assert sessions[0] == (None, "connect_refused: status 0: invalid sign")


async def test_taobao_reconnects_after_drop_and_garbage(write_config, tmp_path):
    async with FakeTmc(APP_KEY, TB_SECRET, redeliver_seconds=ONCE) as fake:
        fake.misbehave.drop_after = 1
        fake.misbehave.garbage_every = 2
        async with running(write_config(taobao_shop(fake.url))) as hub:
            ids = [
                fake.publish(
                    "taobao_trade_TradeCreate",
                    trade(100 + i, "WAIT_BUYER_PAY"),
                    user_id=SELLER_ID,
                    nick=NICK,
                )
                for i in range(3)
            ]
            await fake.mailbox.wait_confirmed(ids, timeout=15)
            reconnects = channels.state(hub)[0]["reconnects"]
    assert reconnects >= 2
    db = tmp_path / "hub.db"
    assert rows(db, "SELECT count(DISTINCT order_id) FROM events") == [(3,)]
    assert rows(db, "SELECT count(*) FROM requests WHERE reason = 'malformed_frame'")[0][0] >= 1


async def test_taobao_silent_service_is_detected_by_pings(write_config):
    async with FakeTmc(APP_KEY, TB_SECRET) as fake:
        fake.misbehave.silent = True
        extra = ", ping_seconds = 0.1, ping_timeout_seconds = 0.2"
        async with running(write_config(taobao_shop(fake.url, extra=extra))):
            await fake.wait_connects(2)  # the hub gave up on the silent one and came back
        assert fake.connects[:2] == [(True, "accepted"), (True, "accepted")]


async def test_pinduoduo_message_acked_after_commit(write_config, tmp_path):
    async with FakePmc(
        CLIENT_ID, PDD_SECRET, heartbeat_seconds=0.2, redeliver_seconds=ONCE
    ) as fake:
        async with running(write_config(pdd_shop(fake.url))) as hub:
            mid = fake.publish(
                "pdd_refund_RefundCreated",
                {
                    "mall_id": MALL_ID,
                    "refund_fee": 1990,
                    "bill_type": 1,
                    "modified": 1625637425016,
                    "refund_id": 7381745730,
                    "operation": 1000,
                    "tid": "210707-339507978993455",
                },
                mall_id=MALL_ID,
            )
            await fake.mailbox.wait_confirmed([mid])
            await eventually(lambda: fake.heartbeats_received >= 1)
            state = channels.state(hub)[0]
            token = Store(hub.settings.db).run(issue_token, "ana", "viewer")
            transport = httpx.ASGITransport(app=create_app(hub, lifespan=False))
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
                api = await client.get(
                    "/api/channels", headers={"Authorization": f"Bearer {token}"}
                )
        assert api.status_code == 200, api.text
        assert api.json()["shops"][0]["shop"] == "acme-pdd"
        assert api.json()["shops"][0]["messages"] == 1
        assert state["connected"] and state["shop"] == "acme-pdd"
    db = tmp_path / "hub.db"
    assert rows(db, "SELECT kind, order_id, amount, occurred_at, message_id FROM events") == [
        (
            "refund_requested",
            "210707-339507978993455",
            "19.90",
            "2021-07-07T05:57:05.016000Z",
            str(mid),
        )
    ]
    assert rows(db, "SELECT channel, method, path FROM requests") == [
        ("pmc", "WS", "/channels/pinduoduo/acme-pdd")
    ]


async def test_pinduoduo_redelivery_dedupes_and_garbage_is_recorded(write_config, tmp_path):
    async with FakePmc(
        CLIENT_ID, PDD_SECRET, heartbeat_seconds=0.2, redeliver_seconds=ONCE
    ) as fake:
        fake.misbehave.drop_after = 1
        fake.misbehave.garbage_every = 3
        async with running(write_config(pdd_shop(fake.url))):
            ids = [
                fake.publish(
                    "pdd_trade_TradeConfirmed",
                    {"mall_id": MALL_ID, "tid": f"231125-00000000000000{i}"},
                    mall_id=MALL_ID,
                )
                for i in range(3)
            ]
            await fake.mailbox.wait_confirmed(ids, timeout=15)
    db = tmp_path / "hub.db"
    assert rows(db, "SELECT count(*), count(DISTINCT order_id) FROM events") == [(3, 3)]
    assert rows(db, "SELECT count(*) FROM requests WHERE reason = 'malformed_frame'")[0][0] >= 1


async def test_pinduoduo_bad_sign_is_refused_and_reported(write_config):
    async with FakePmc(CLIENT_ID, PDD_SECRET) as fake:
        async with running(write_config(pdd_shop(fake.url, secret="wrong"))) as hub:
            await fake.wait_connects(1)
            error = await eventually(lambda: last_error(hub))
        assert fake.connects[0] == (False, "invalid sign")
    assert error.startswith("connect_refused: HTTP 401") and "invalid sign" in error


async def test_pinduoduo_reconnects_when_heartbeats_stop(write_config):
    async with FakePmc(CLIENT_ID, PDD_SECRET, heartbeat_seconds=0.1) as fake:
        fake.misbehave.silent = True
        extra = ", heartbeat_timeout_seconds = 0.3"
        async with running(write_config(pdd_shop(fake.url, extra=extra))) as hub:
            await fake.wait_connects(2)
            error = await eventually(lambda: last_error(hub))
    assert error == "stalled: server heartbeats stopped"


@pytest.mark.slow
async def test_hub_process_killed_before_its_confirm_is_read_stores_once(write_config, tmp_path):
    """The real thing: `orderhook serve` in its own process, SIGKILLed after the commit
    while TMC has not taken in the Confirm (the fake stops reading, so for the platform
    the message is unconfirmed); the next hub gets it again and stores it once."""
    async with FakeTmc(APP_KEY, TB_SECRET, redeliver_seconds=60) as fake:
        fake.misbehave.silent = True  # reads nothing after CONNECTACK: confirms stay unread
        extra = ", ping_seconds = 600"
        config = tmp_path / "orderhook.toml"
        config.write_text('[hub]\ndb = "hub.db"\nport = 0\n' + taobao_shop(fake.url, extra=extra))
        db = tmp_path / "hub.db"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from hub.cli import main; main()",
            "serve",
            "--config",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            mid = fake.publish("taobao_trade_TradeBuyerPay", trade(9), user_id=SELLER_ID, nick=NICK)
            await eventually(lambda: committed_requests(db), timeout=30)
        finally:
            process.kill()  # SIGKILL: no shutdown, no drain
            await process.wait()
        assert not fake.mailbox.confirmed
        fake.drop()  # the platform side of the dead connection goes, Confirm unread
        fake.misbehave.silent = False
        async with running(config):
            await fake.mailbox.wait_confirmed([mid])
    assert rows(db, "SELECT count(*) FROM events") == [(1,)]
    assert rows(db, "SELECT outcome FROM requests ORDER BY id") == [("accepted",), ("duplicate",)]


async def test_channels_follow_a_config_reload(write_config, monkeypatch):
    monkeypatch.setattr(channels, "RESCAN_SECONDS", 0.05)
    tmall_fake, pdd_fake = FakeTmc(APP_KEY, TB_SECRET), FakePmc(CLIENT_ID, PDD_SECRET)
    async with (
        tmall_fake as tmall,
        pdd_fake as pdd,
        running(write_config(taobao_shop(tmall.url))) as hub,
    ):
        await tmall.wait_connects(1)
        assert [s["shop"] for s in channels.state(hub)] == ["acme-tmall"]
        hub.settings = load(write_config(pdd_shop(pdd.url)), env={})  # tmall removed
        await pdd.wait_connects(1)
        await eventually(lambda: not tmall.connections)  # its channel was closed
        assert [s["shop"] for s in channels.state(hub)] == ["acme-pdd"]


@respx.mock(assert_all_called=False)
async def test_taobao_connect_carries_the_tmc_auth_token(write_config, respx_mock):
    """As the Java SDK does for mc.api.taobao.com: `taobao.tmc.auth.get(group)` first,
    its result in the CONNECT's `token` header; an API refusal is reported."""
    answers = iter(
        [
            httpx.Response(200, json={"error_response": {"code": 29, "msg": "Invalid app Key"}}),
            httpx.Response(200, json={"tmc_auth_get_response": {"result": "auth-123"}}),
        ]
    )
    route = respx_mock.post(url__startswith="http://top.test/router/rest").mock(
        side_effect=lambda request: next(answers)
    )
    async with FakeTmc(APP_KEY, TB_SECRET) as fake:
        fake.auth_token = "auth-123"
        shop = taobao_shop(fake.url, extra=", tmc_auth = true") + 'api_base = "http://top.test"\n'
        hub = Hub(load(write_config(shop), env={}), services=[channels.run])
        async with hub.running():
            error = await eventually(lambda: last_error(hub))
            await fake.wait_connects(1)
        assert fake.connects[0] == (True, "accepted")
    assert error.startswith("auth_failed: taobao.tmc.auth.get")
    sent = [dict(parse_qsl(call.request.url.query.decode())) for call in route.calls]
    assert sent[0]["method"] == "taobao.tmc.auth.get" and sent[0]["app_key"] == APP_KEY
    assert dict(parse_qsl(route.calls[0].request.content.decode())) == {"group": "default"}
