"""Notification channels in the hub: `[notify]` config, `deliver` (respx in place of the
robot APIs), rate limiting with digests, credential masking, and `alert`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from connectors.notify import Message, ok, retry
from hub import settings as settings_mod
from hub.notify import Throttle, alert, deliver, describe, digest, digest_line, section
from hub.runtime import Hub
from hub.settings import ConfigError, Settings
from hub.store import Store

pytestmark = pytest.mark.anyio

WECOM_KEY = "693a91f6-7aoc-4bc4-97a0-0ec2sifa5aaa"
DING_TOKEN = "d1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80"
DING_SECRET = "SECorderhook" + "0" * 52 + "a"
FEISHU_TOKEN = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

CHANNELS = """
[notify]
alerts = ["ops-wecom", "ops-ding"]

[notify.channels.ops-wecom]
kind = "wecom"
key = "env:TEST_WECOM_KEY"

[notify.channels.ops-ding]
kind = "dingtalk"
access_token = "env:TEST_DING_TOKEN"
secret = "env:TEST_DING_SECRET"
keyword = "orderhook"

[notify.channels.ops-feishu]
kind = "feishu"
token = "env:TEST_FEISHU_TOKEN"
secret = "orderhook-feishu-secret"
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_WECOM_KEY", WECOM_KEY)
    monkeypatch.setenv("TEST_DING_TOKEN", DING_TOKEN)
    monkeypatch.setenv("TEST_DING_SECRET", DING_SECRET)
    monkeypatch.setenv("TEST_FEISHU_TOKEN", FEISHU_TOKEN)


@pytest.fixture
def notify_settings(env: None, write_config: Callable[[str], Path]) -> Settings:
    return settings_mod.load(write_config(CHANNELS), env={})


@pytest.fixture
def hub(notify_settings: Settings) -> Hub:
    # deliver needs the settings and metrics, not a running store
    return Hub(notify_settings)


# --- configuration ----------------------------------------------------------------------


def test_channels_are_parsed_and_addressable_by_name(notify_settings: Settings) -> None:
    parsed = section(notify_settings)
    assert sorted(parsed.channels) == ["ops-ding", "ops-feishu", "ops-wecom"]
    assert parsed.alerts == ("ops-wecom", "ops-ding")
    assert parsed.channels["ops-wecom"].config.key == WECOM_KEY
    shown = describe(parsed.channels["ops-ding"])
    assert DING_TOKEN not in json.dumps(shown) and DING_SECRET not in json.dumps(shown)


def test_no_notify_section_means_no_channels(settings: Settings) -> None:
    assert section(settings).channels == {} and section(settings).alerts == ()


@pytest.mark.parametrize(
    ("extra", "at", "words"),
    [
        ('[notify.channels.a]\nkind = "slack"\n', 'kind = "slack"', "not a channel kind"),
        ('[notify.channels.a]\nkind = "wecom"\n', "[notify.channels.a]", "'key' is required"),
        (
            '[notify.channels.a]\nkind = "wecom"\nkey = "k"\ntoken = "x"\n',
            'token = "x"',
            "unknown setting 'token'",
        ),
        (
            '[notify.channels.a]\nkind = "wecom"\nkey = "env:NOPE_UNSET"\n',
            'key = "env:NOPE_UNSET"',
            "environment variable NOPE_UNSET is not set",
        ),
        (
            '[notify.channels.a]\nkind = "dingtalk"\naccess_token = "t"\nsecret = "abc"\n',
            'secret = "abc"',
            "starts with 'SEC'",
        ),
        (
            '[notify.channels.a]\nkind = "wecom"\nkey = "k"\nper_minute = 60\n',
            "per_minute = 60",
            "published limit of 20",
        ),
        (
            '[notify]\nalerts = ["ops-x"]\n[notify.channels.a]\nkind = "wecom"\nkey = "k"\n',
            'alerts = ["ops-x"]',
            "'ops-x' is not a channel",
        ),
        (
            '[notify.channels.a]\nkind = "email"\nhost = "h"\nfrom = "ops"\nto = ["a@b.c"]\n',
            'from = "ops"',
            "not an email address",
        ),
        ("[notify]\nretries = 3\n", "retries = 3", "unknown setting"),
    ],
)
def test_config_errors_name_file_line_and_reason(
    write_config: Callable[[str], Path], extra: str, at: str, words: str
) -> None:
    path = write_config(extra)
    line = path.read_text().splitlines().index(at) + 1
    with pytest.raises(ConfigError) as caught:
        settings_mod.load(path, env={})
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message


# --- deliver: exact bodies and signed URLs on the wire ------------------------------------


PAYLOAD = {"title": "Delivery dead", "text": "outbox #7 to erp: HTTP 503", "severity": "critical"}


async def test_wecom_delivery_posts_the_documented_body(hub: Hub) -> None:
    with respx.mock(assert_all_called=True) as router:
        route = router.post("https://qyapi.weixin.qq.com/cgi-bin/webhook/send").respond(
            200, json={"errcode": 0, "errmsg": "ok"}
        )
        async with httpx.AsyncClient() as http:
            result = await deliver(hub, "ops-wecom", PAYLOAD, http)
    assert result.ok, result
    sent = route.calls.last.request
    assert sent.url.params["key"] == WECOM_KEY
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {
        "msgtype": "markdown",
        "markdown": {
            "content": '**Delivery dead**\n<font color="warning">CRITICAL</font>\n'
            "outbox #7 to erp: HTTP 503"
        },
    }


async def test_dingtalk_delivery_signs_the_url(hub: Hub) -> None:
    with respx.mock() as router:
        route = router.post("https://oapi.dingtalk.com/robot/send").respond(
            200, json={"errcode": 0, "errmsg": "ok"}
        )
        async with httpx.AsyncClient() as http:
            result = await deliver(hub, "ops-ding", PAYLOAD, http)
    assert result.ok, result
    query = parse_qs(urlsplit(str(route.calls.last.request.url)).query)
    assert query["access_token"] == [DING_TOKEN]
    timestamp = query["timestamp"][0]
    # recomputed here from DingTalk's published recipe (key = secret)
    expected = base64.b64encode(
        hmac.new(
            DING_SECRET.encode(), f"{timestamp}\n{DING_SECRET}".encode(), hashlib.sha256
        ).digest()
    ).decode()
    assert query["sign"] == [expected]
    assert len(timestamp) == 13  # milliseconds
    body = json.loads(route.calls.last.request.content)
    assert body["msgtype"] == "markdown" and body["markdown"]["text"].endswith("orderhook")


async def test_feishu_delivery_signs_the_body(hub: Hub) -> None:
    with respx.mock() as router:
        route = router.post(f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_TOKEN}").respond(
            200, json={"code": 0, "msg": "success", "data": {}}
        )
        async with httpx.AsyncClient() as http:
            result = await deliver(hub, "ops-feishu", PAYLOAD, http)
    assert result.ok, result
    body = json.loads(route.calls.last.request.content)
    key = f"{body['timestamp']}\n{'orderhook-feishu-secret'}".encode()
    assert body["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert len(body["timestamp"]) == 10  # seconds, as a string
    assert body["content"]["post"]["zh_cn"]["title"] == "[CRITICAL] Delivery dead"


async def test_failure_in_a_200_body_is_a_failure_with_the_setting_to_fix(hub: Hub) -> None:
    with respx.mock() as router:
        router.post("https://qyapi.weixin.qq.com/cgi-bin/webhook/send").respond(
            200,
            json={
                "errcode": 93000,
                "errmsg": f"invalid webhook url, hint: [xx], url: /send?key={WECOM_KEY}",
            },
        )
        async with httpx.AsyncClient() as http:
            result = await deliver(hub, "ops-wecom", PAYLOAD, http)
    assert not result.ok and not result.retryable and result.code == "93000"
    assert "notify.channels.ops-wecom" in result.detail and "fix `key`" in result.detail
    assert WECOM_KEY not in result.detail  # the service echoed it; we do not
    assert "***5aaa" in result.detail


async def test_connection_errors_are_retryable_and_masked(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with respx.mock() as router:
        router.post("https://oapi.dingtalk.com/robot/send").mock(
            side_effect=httpx.ConnectError(
                f"cannot reach https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}"
            )
        )
        router.post("https://qyapi.weixin.qq.com/cgi-bin/webhook/send").respond(
            200, json={"errcode": 0}
        )
        async with httpx.AsyncClient() as http:
            failed = await deliver(hub, "ops-ding", PAYLOAD, http)
            await deliver(hub, "ops-wecom", PAYLOAD, http)
    assert not failed.ok and failed.retryable and failed.code == "connect"
    assert DING_TOKEN not in failed.detail
    # httpx logs every request with its full URL; the robot key must not reach the log
    assert "HTTP Request" in caplog.text
    assert WECOM_KEY not in caplog.text and DING_TOKEN not in caplog.text


async def test_unknown_channel_and_bad_payload_are_permanent(hub: Hub) -> None:
    async with httpx.AsyncClient() as http:
        missing = await deliver(hub, "ops-nope", PAYLOAD, http)
        bad = await deliver(hub, "ops-wecom", {"title": 3}, http)
    assert (missing.ok, missing.retryable, missing.code) == (False, False, "unknown_channel")
    assert "ops-wecom" in missing.detail  # lists the known channels
    assert (bad.ok, bad.retryable, bad.code) == (False, False, "bad_payload")


# --- rate limits and digests ------------------------------------------------------------


async def test_a_burst_is_merged_into_one_digest_not_dropped(hub: Hub) -> None:
    with respx.mock() as router:
        route = router.post(f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_TOKEN}").respond(
            200, json={"code": 0, "msg": "success"}
        )
        async with httpx.AsyncClient() as http:
            results = await asyncio.gather(
                *(
                    deliver(
                        hub,
                        "ops-feishu",
                        {
                            "title": f"alert {i}",
                            "text": f"detail {i}",
                            "severity": "warning" if i else "critical",
                        },
                        http,
                    )
                    for i in range(30)
                )
            )
    assert all(r.ok for r in results)
    # Feishu allows 5/s: one message goes at once, the 29 that found no token share one post
    assert route.call_count == 2
    first, second = (json.loads(c.request.content) for c in route.calls)
    assert first["content"]["post"]["zh_cn"]["title"] == "[CRITICAL] alert 0"
    digest = second["content"]["post"]["zh_cn"]
    assert digest["title"] == "[WARNING] 29 notifications (29 warning)"
    lines = digest["content"][0][0]["text"].splitlines()
    assert lines == [f"[WARNING] alert {i}: detail {i}" for i in range(1, 30)]
    metrics = hub.metrics.render().decode()
    assert 'orderhook_notify_merged_total{channel="ops-feishu"} 29.0' in metrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_no_window_of_a_minute_sees_more_than_the_published_limit() -> None:
    clock = FakeClock()
    gate = Throttle([(20, 60.0)], digest_bytes=4096, clock=clock, sleep=clock.sleep, max_wait=1e9)
    sent: list[tuple[float, int]] = []

    async def send(messages):
        sent.append((clock.now, len(messages)))
        return ok()

    # 300 messages arrive at 2 per simulated second, for 150 s
    tasks = []
    for i in range(300):
        tasks.append(asyncio.create_task(gate.submit(Message(f"m{i}", "x"), send)))
        await asyncio.sleep(0)
        clock.now += 0.5
    results = await asyncio.gather(*tasks)
    assert all(r.ok for r in results)
    assert sum(n for _, n in sent) == 300  # every message went out, none dropped
    times = [t for t, _ in sent]
    for start in times:
        assert sum(1 for t in times if start <= t < start + 60) <= 20
    assert len(sent) < 300  # so bursts were merged


async def test_a_service_rate_limit_answer_pauses_the_robot() -> None:
    clock = FakeClock()
    gate = Throttle([(20, 60.0)], digest_bytes=4096, clock=clock, sleep=clock.sleep, max_wait=30)

    async def limited(messages):
        return retry("45009", "freq", after=60.0)

    first = await gate.submit(Message("a", "x"), limited)
    assert first.retryable and first.retry_after == 60.0
    # within the pause nothing is sent; the row goes back to the outbox with the wait
    later = await gate.submit(Message("b", "x"), limited)
    assert later.code == "throttled" and later.retry_after and later.retry_after >= 59


# --- alerts -----------------------------------------------------------------------------


def test_alert_queues_one_row_per_alert_channel(notify_settings: Settings) -> None:
    store = Store(notify_settings.db)

    def raise_alert(conn):
        ids = alert(conn, notify_settings, title="Delivery dead", text="outbox #7")
        again = alert(conn, notify_settings, title="Delivery dead", text="outbox #7")
        rows = conn.execute("SELECT kind, target, payload FROM outbox ORDER BY id").fetchall()
        return ids, again, rows

    ids, again, rows = store.run(raise_alert)
    assert len(ids) == 2 and again == []  # the same alert in the same minute is queued once
    assert [(r[0], r[1]) for r in rows] == [("notify", "ops-wecom"), ("notify", "ops-ding")]
    assert json.loads(rows[0][2]) == {
        "title": "Delivery dead",
        "text": "outbox #7",
        "severity": "critical",
    }


def test_alert_rejects_unknown_severity(notify_settings: Settings) -> None:
    with pytest.raises(ValueError, match="severity"):
        Store(notify_settings.db).run(
            lambda conn: alert(conn, notify_settings, title="t", text="x", severity="urgent")
        )


async def test_every_message_of_a_long_burst_shows_in_full_in_some_digest() -> None:
    from connectors.notify import wecom

    clock = FakeClock()
    gate = Throttle(
        [(20, 60.0)],
        digest_bytes=wecom.LIMITS.digest_budget,
        clock=clock,
        sleep=clock.sleep,
        max_wait=1e9,
    )
    posted: list[tuple[list[Message], str]] = []

    async def send(messages):
        posted.append((list(messages), wecom.body(digest(messages))["text"]["content"]))
        return ok()

    burst = [
        Message(f"订单 {i} 同步失败", "平台返回错误 " * 40, "critical", mentions=("13800001111",))
        for i in range(60)
    ]
    results = await asyncio.gather(*(gate.submit(m, send) for m in burst))
    assert all(r.ok for r in results)
    assert sorted(m.title for batch, _ in posted for m in batch) == sorted(m.title for m in burst)
    digests = [(batch, content) for batch, content in posted if len(batch) > 1]
    assert digests
    for batch, content in digests:
        assert len(content.encode()) <= 2048  # WeCom's text limit (mentions force text)
        for message in batch:
            assert digest_line(message) in content  # each line whole, none cut away


async def test_callers_get_an_answer_when_the_digest_send_is_interrupted() -> None:
    clock = FakeClock()
    gate = Throttle([(20, 60.0)], digest_bytes=4096, clock=clock, sleep=clock.sleep, max_wait=1e9)
    started, never = asyncio.Event(), asyncio.Event()

    async def hang(messages):
        if len(messages) > 1:
            started.set()
            await never.wait()
        return ok()

    calls = [asyncio.create_task(gate.submit(Message(f"m{i}", "x"), hang)) for i in range(5)]
    await started.wait()
    assert gate.flusher is not None
    gate.flusher.cancel()
    results = await asyncio.wait_for(asyncio.gather(*calls), 5)
    assert [r.ok for r in results[:2]] == [True, True]  # the burst went out at once
    assert all(r.retryable and r.code == "interrupted" for r in results[2:])


def fake_dingtalk(secret: str, keyword: str, seen: list[dict]):
    """A stand-in robot on a real socket: checks 加签 and the keyword the way DingTalk
    describes it, and answers HTTP 200 either way, with the verdict in errcode."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def send(request: Request) -> JSONResponse:
        timestamp, sign = request.query_params["timestamp"], request.query_params["sign"]
        mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
        body = await request.json()
        seen.append(body)
        if sign != base64.b64encode(mac.digest()).decode():
            return JSONResponse({"errcode": 310000, "errmsg": "sign not match"})
        if keyword not in body["markdown"]["text"]:
            return JSONResponse({"errcode": 310000, "errmsg": "keywords not in content"})
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    return Starlette(routes=[Route("/robot/send", send, methods=["POST"])])


async def test_dingtalk_robot_on_a_real_socket(
    monkeypatch: pytest.MonkeyPatch, write_config: Callable[[str], Path]
) -> None:
    from tests.conftest import serve_app

    seen: list[dict] = []
    monkeypatch.setenv("TEST_DING_TOKEN", DING_TOKEN)
    with serve_app(fake_dingtalk(DING_SECRET, "orderhook", seen)) as base:

        def hub_with(secret: str, keyword: str) -> Hub:
            path = write_config(
                f'[notify.channels.ding]\nkind = "dingtalk"\naccess_token = "env:TEST_DING_TOKEN"'
                f'\nsecret = "{secret}"\nkeyword = "{keyword}"\nbase_url = "{base}"\n'
            )
            return Hub(settings_mod.load(path, env={}))

        async with httpx.AsyncClient() as http:
            good = await deliver(hub_with(DING_SECRET, "orderhook"), "ding", PAYLOAD, http)
            bad_sign = await deliver(hub_with("SECwrong", "orderhook"), "ding", PAYLOAD, http)
            no_word = await deliver(hub_with(DING_SECRET, "shop"), "ding", PAYLOAD, http)
    assert good.ok, good
    assert (bad_sign.ok, bad_sign.retryable, bad_sign.code) == (False, False, "310000")
    assert "fix `secret`" in bad_sign.detail
    assert "set `keyword`" in no_word.detail
    assert len(seen) == 3


async def test_two_channels_on_one_robot_share_its_rate_limit(
    env: None, write_config: Callable[[str], Path]
) -> None:
    path = write_config(
        '[notify.channels.ops]\nkind = "feishu"\ntoken = "env:TEST_FEISHU_TOKEN"\n'
        '[notify.channels.cs]\nkind = "feishu"\ntoken = "env:TEST_FEISHU_TOKEN"\n'
    )
    hub = Hub(settings_mod.load(path, env={}))
    with respx.mock() as router:
        route = router.post(f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_TOKEN}").respond(
            200, json={"code": 0}
        )
        async with httpx.AsyncClient() as http:
            results = await asyncio.gather(
                *(
                    deliver(hub, ("ops", "cs")[i % 2], {"title": f"t{i}", "text": "x"}, http)
                    for i in range(10)
                )
            )
    assert all(r.ok for r in results)
    # one bucket (1 + 4/s): one message at once, then one digest of the other nine
    assert route.call_count == 2
