"""Re-signing Douyin and JD Daojia recordings (`orderhook replay --resign / --secret`):
the recorded push signed again for another secret (a test app's, a rotated one), checked
with each connector's own verify and by the platforms' published rules spelled out by
hand; what the signature does not cover stays byte for byte as recorded."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from click.testing import CliRunner

from connectors import douyin, jddj
from connectors.base import Inbound, Outbound, Rejection
from hub import settings as settings_mod
from hub.cli import cli
from hub.model import shanghai_to_utc
from hub.settings import Settings, Shop
from sandbox import recordings
from sandbox.sending import outbound_of, resolve_shop

SAMPLES = Path(__file__).resolve().parent.parent / "recordings"
DOUYIN_REC = SAMPLES / "douyin" / "paid.json"
JDDJ_REC = SAMPLES / "jddj" / "paid.json"

# the credentials the samples were signed with (recordings/shops.toml)
DOUYIN = Shop(
    "demo-douyin", "douyin", "2ad2355c-01d0-11f8-91dc-05a8cd1054b1", app_key="3409409348479354011"
)
JDDJ = Shop(
    "demo-jddj",
    "jddj",
    "6e1d9a2c4b7f4e0f9d3a8c5b2e1f0a97",
    app_key="1db5f8a8b1424d06a441b339f48e36bd",
)
# the secrets of the endpoint the recordings are replayed to days later
DOUYIN_NEW = "9f3c1e2a-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
JDDJ_NEW = "0123456789abcdef0123456789abcdef"


def inbound(shop: Shop, out: Outbound) -> Inbound:
    headers = {k.lower(): v for k, v in out.headers.items()}
    return Inbound(
        platform=shop.platform,
        shop=shop,
        method="POST",
        path=f"/webhooks/{shop.platform}/{shop.name}{out.tail}",
        tail=out.tail,
        query="",
        headers=headers,
        body=out.body,
        received_at=datetime.now(UTC),
        content_type=headers.get("content-type", ""),
    )


def refusal(shop: Shop, out: Outbound) -> str:
    connector = douyin.connector if shop.platform == "douyin" else jddj.connector
    with pytest.raises(Rejection) as caught:
        connector.verify(inbound(shop, out))
    return caught.value.reason


def with_secret(shop: Shop, secret: str) -> Shop:
    return dataclasses.replace(shop, secret=secret)


def daojia_sign(params: dict[str, str], secret: str) -> str:
    """Daojia's rule spelled out: non-empty params but sign, names sorted, name+value,
    the secret at both ends, MD5, upper-case hex."""
    text = "".join(k + params[k] for k in sorted(params) if k != "sign" and params[k])
    return hashlib.md5((secret + text + secret).encode()).hexdigest().upper()


# --- Douyin: md5(app_key + body + secret), no time signed --------------------------------


def test_douyin_recording_resigned_verifies_only_under_the_new_secret() -> None:
    recorded = outbound_of(recordings.load(DOUYIN_REC))
    douyin.connector.verify(inbound(DOUYIN, recorded))  # the sample is genuine as recorded
    new = with_secret(DOUYIN, DOUYIN_NEW)
    assert refusal(new, recorded) == "bad_signature"

    resigned = douyin.connector.resign(new, recorded)

    douyin.connector.verify(inbound(new, resigned))
    assert refusal(DOUYIN, resigned) == "bad_signature"
    by_hand = hashlib.md5(DOUYIN.app_key.encode() + recorded.body + DOUYIN_NEW.encode())
    assert resigned.headers["event-sign"] == by_hand.hexdigest()
    # Douyin's signature covers no time: nothing else moves, not even the body's own times
    assert resigned.body == recorded.body
    assert list(resigned.headers) == list(recorded.headers)
    assert {k: v for k, v in resigned.headers.items() if k != "event-sign"} == {
        k: v for k, v in recorded.headers.items() if k != "event-sign"
    }


def test_douyin_resigned_for_the_test_app_carries_its_app_id() -> None:
    recorded = outbound_of(recordings.load(DOUYIN_REC))
    test_app = Shop("dy-test", "douyin", DOUYIN_NEW, app_key="7000000000000000001")

    resigned = douyin.connector.resign(test_app, recorded)

    assert resigned.headers["app-id"] == "7000000000000000001"
    douyin.connector.verify(inbound(test_app, resigned))
    assert refusal(DOUYIN, resigned) == "app_key_mismatch"
    assert resigned.body == recorded.body


def test_douyin_resigned_with_only_a_secret_keeps_the_recorded_app_id() -> None:
    # `--secret` for a shop the config does not have: no app key but the recorded one
    rec = recordings.load(DOUYIN_REC)
    bare = resolve_shop("douyin", "elsewhere", secret=DOUYIN_NEW)
    assert bare.app_key is None

    resigned = douyin.connector.resign(bare, outbound_of(rec))

    assert resigned.headers["app-id"] == DOUYIN.app_key
    douyin.connector.verify(inbound(with_secret(DOUYIN, DOUYIN_NEW), resigned))


# --- JD Daojia: MD5 over every form parameter, the timestamp included ---------------------


def test_daojia_recording_resigned_verifies_only_under_the_new_secret() -> None:
    rec = recordings.load(JDDJ_REC)
    recorded = dataclasses.replace(outbound_of(rec), tail="/djsw/newOrder")
    jddj.connector.verify(inbound(JDDJ, recorded))  # the sample is genuine as recorded
    new = with_secret(JDDJ, JDDJ_NEW)
    assert refusal(new, recorded) == "bad_signature"
    before = datetime.now(UTC).replace(microsecond=0)

    resigned = jddj.connector.resign(new, recorded)

    after = datetime.now(UTC)
    jddj.connector.verify(inbound(new, resigned))
    assert refusal(JDDJ, resigned) == "bad_signature"
    params = dict(parse_qsl(resigned.body.decode()))
    assert params["sign"] == daojia_sign(params, JDDJ_NEW)
    # the signed timestamp moved from the recording's (2025-11-11) to now, in Beijing time
    assert before <= shanghai_to_utc(params["timestamp"]) <= after
    old = dict(parse_qsl(recorded.body.decode()))
    assert old["timestamp"] == "2025-11-11 00:00:06"
    # every other parameter byte for byte, in the recorded order; the message's own
    # timestamp inside jd_param_json is the change's time and stays
    changed = (b"sign=", b"timestamp=")
    kept = [s for s in recorded.body.split(b"&") if not s.startswith(changed)]
    assert [s for s in resigned.body.split(b"&") if not s.startswith(changed)] == kept
    assert [s.split(b"=")[0] for s in resigned.body.split(b"&")] == [
        s.split(b"=")[0] for s in recorded.body.split(b"&")
    ]
    assert resigned.headers == recorded.headers and resigned.tail == recorded.tail


def test_daojia_resign_keeps_another_senders_escaping_byte_for_byte() -> None:
    # a sender that escapes with %20 and lower-case hex, leaves ':' bare, sends an empty
    # token and orders the parameters its own way: re-encoding would change these bytes
    jd_param = (
        b"jd_param_json=%7b%22billId%22:%2242%22,%22timestamp%22:%222026-11-11%2000:00:05%22%7d"
    )
    body = b"v=1.0&format=json&token=&timestamp=2026-11-20%2008:00:00&" + jd_param
    body += b"&app_key=" + JDDJ.app_key.encode()
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    body += b"&sign=" + daojia_sign(params, JDDJ.secret).encode()
    recorded = Outbound({"content-type": "application/x-www-form-urlencoded"}, body, "/djsw/x")
    jddj.connector.verify(inbound(JDDJ, recorded))

    resigned = jddj.connector.resign(with_secret(JDDJ, JDDJ_NEW), recorded)

    jddj.connector.verify(inbound(with_secret(JDDJ, JDDJ_NEW), resigned))
    segments = resigned.body.split(b"&")
    assert segments[:3] == [b"v=1.0", b"format=json", b"token="]
    assert segments[3] != b"timestamp=2026-11-20%2008:00:00"
    assert segments[4:6] == [jd_param, b"app_key=" + JDDJ.app_key.encode()]
    assert segments[6].startswith(b"sign=") and len(segments) == 7


def test_daojia_resigned_for_another_app_carries_its_app_key() -> None:
    recorded = outbound_of(recordings.load(JDDJ_REC))
    other = Shop("dj-test", "jddj", JDDJ_NEW, app_key="test-app-key")

    resigned = jddj.connector.resign(other, recorded)

    assert dict(parse_qsl(resigned.body.decode()))["app_key"] == "test-app-key"
    jddj.connector.verify(inbound(other, resigned))
    assert refusal(JDDJ, resigned) == "app_key_mismatch"


def test_daojia_body_that_is_not_form_data_is_sent_as_recorded() -> None:
    recorded = Outbound({"content-type": "application/x-www-form-urlencoded"}, b"\xff\xfe=1")
    assert jddj.connector.resign(with_secret(JDDJ, JDDJ_NEW), recorded) == recorded


# --- end to end: orderhook replay --secret against a real hub ----------------------------

HUB_SHOPS = f"""
[shops.demo-douyin]
platform = "douyin"
app_key = "{DOUYIN.app_key}"
secret = "{DOUYIN_NEW}"
options = {{ reconcile = false }}

[shops.demo-jddj]
platform = "jddj"
app_key = "{JDDJ.app_key}"
secret = "{JDDJ_NEW}"
"""


@pytest.fixture
def settings(write_config: Callable[[str], Path]) -> Settings:
    """A hub whose demo shops have other secrets than the samples were signed with."""
    return settings_mod.load(write_config(HUB_SHOPS), env={})


def replay(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["replay", *args, "--json"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    out = result.output
    return result.exit_code, json.loads(out[out.index("{") :])


def test_replay_with_secret_gets_stale_recordings_accepted_by_a_hub(live_hub, tmp_path) -> None:
    url, hub = live_hub
    cfg = str(tmp_path / "orderhook.toml")  # what the settings fixture wrote
    for path, secret in ((DOUYIN_REC, DOUYIN_NEW), (JDDJ_REC, JDDJ_NEW)):
        code, exact = replay("-f", str(path), "--to", url, "--config", cfg)
        assert code == 1 and exact["results"][0]["status"] == 401, exact

        code, resigned = replay("-f", str(path), "--to", url, "--config", cfg, "--secret", secret)

        # the recorded answer was Douyin's / Daojia's success ack: the same again
        assert code == 0, resigned
        assert resigned["same"] == 1 and resigned["results"][0]["status"] == 200
    rows = hub.store.run(
        lambda c: c.execute("select platform, outcome, reason from requests order by id").fetchall()
    )
    assert [tuple(r) for r in rows] == [
        ("douyin", "rejected", "bad_signature"),
        ("douyin", "accepted", None),
        ("jddj", "rejected", "bad_signature"),
        ("jddj", "accepted", None),
    ]
    events = hub.store.run(
        lambda c: c.execute("select platform, order_id, kind from events order by id").fetchall()
    )
    assert [tuple(e) for e in events] == [
        ("douyin", "4881995531871913482", "paid"),
        ("jddj", "2511110000000001", "paid"),
    ]


def test_doctor_names_the_secret_a_douyin_or_daojia_endpoint_accepts(live_hub) -> None:
    # doctor signs its test push with the secret given, then re-signs it with each
    # --try-secret: the hub holds the "test" one, so that is the mix-up it reports
    url, _hub = live_hub
    for shop, new in ((DOUYIN, DOUYIN_NEW), (JDDJ, JDDJ_NEW)):
        args = ["doctor", f"{url}/webhooks/{shop.platform}/{shop.name}", "-p", shop.platform]
        args += ["--shop", shop.name, "--secret", shop.secret, "--app-key", str(shop.app_key)]
        args += ["--try-secret", f"test={new}", "--json", "--config", "/nonexistent.toml"]
        result = CliRunner().invoke(cli, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), result
        report = json.loads(result.output)
        problems = [f for f in report["findings"] if f["severity"] != "ok"]
        assert result.exit_code == 1 and [f["code"] for f in problems] == [
            "environment_mismatch"
        ], report
        assert "'test' secret" in problems[0]["message"]
