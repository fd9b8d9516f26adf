"""The notification services' wire formats: signing vectors, exact bodies, size limits and
the classification of each service's answers (all of them say HTTP 200 on failure)."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from standardwebhooks.webhooks import Webhook

from connectors.notify import (
    ConfigProblem,
    Message,
    Redactor,
    compose,
    dingtalk,
    feishu,
    truncate_utf8,
    webhook,
    wecom,
)

# the 65-character secret behind the second DingTalk vector in integrations.md
ORDERHOOK_DING_SECRET = "SECorderhook" + "0" * 52 + "a"


# --- signing vectors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp_ms", "secret", "expected"),
    [
        (1700000000000, "this is secret", "sSFWELbV2YwjdDQhWZwTcWlX5BWUx5J6TPpsZmuPii0="),
        (1764028800000, ORDERHOOK_DING_SECRET, "22u+a92eKh53iA9ESxFnPxDwfa+xpIhzyx0baYAjNKI="),
        # a value published by another project's tests
        (1700000000000, "SECtest123", "w3RMHXzixTMdzr8OHJUmVLS4IoPJVdu+Ut1LE48MePE="),
    ],
)
def test_dingtalk_signature_vectors(timestamp_ms: int, secret: str, expected: str) -> None:
    assert dingtalk.sign(secret, timestamp_ms) == expected


def test_dingtalk_signed_url_is_url_encoded() -> None:
    config = dingtalk.configure({"access_token": "tok123", "secret": ORDERHOOK_DING_SECRET})
    url = dingtalk.url(config, 1764028800.0)
    assert url == (
        "https://oapi.dingtalk.com/robot/send?access_token=tok123&timestamp=1764028800000"
        "&sign=22u%2Ba92eKh53iA9ESxFnPxDwfa%2BxpIhzyx0baYAjNKI%3D"
    )
    # and the receiving side decodes it back to the exact signature
    assert parse_qs(urlsplit(url).query)["sign"] == ["22u+a92eKh53iA9ESxFnPxDwfa+xpIhzyx0baYAjNKI="]


def test_dingtalk_url_without_secret_has_no_signature() -> None:
    config = dingtalk.configure({"access_token": "tok123"})
    assert dingtalk.url(config, 1.0) == "https://oapi.dingtalk.com/robot/send?access_token=tok123"


@pytest.mark.parametrize(
    ("timestamp_s", "secret", "expected"),
    [
        (100, "demo", "jquNHnVOwmDRfw+vqTIrY5dooJAgi5EcRtLsQE4wfXg="),  # Lark's Java sample
        (1764028800, "orderhook-feishu-secret", "8OrmetvxLmvcvFrNuQeuQnpRletVwl+Mt+9FqdSkJPw="),
        (1700000000000, "SECtest123", "Hd4xFWQU6R6ad4nzy4ETIznzlqebqH7xcTFVmONTudo="),
        (1700000000, "SECtest", "G7XpBpG8NgG02fJOAhX6FRAObIljmFoxVReo8I62pEk="),
    ],
)
def test_feishu_signature_vectors(timestamp_s: int, secret: str, expected: str) -> None:
    assert feishu.sign(secret, timestamp_s) == expected


def test_the_two_recipes_are_not_interchangeable() -> None:
    # DingTalk keys with the secret, Feishu with "ts\nsecret" over nothing
    assert dingtalk.sign("SECtest123", 1700000000000) != feishu.sign("SECtest123", 1700000000000)


# --- bodies -----------------------------------------------------------------------------


def test_wecom_markdown_body_and_url() -> None:
    config = wecom.configure({"key": "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"})
    message = Message("Delivery dead", "outbox #7 to erp: HTTP 503", "critical", url="http://x/7")
    prepared = wecom.request(config, message, 0)
    assert prepared.url == (
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
    )
    assert json.loads(prepared.body) == {
        "msgtype": "markdown",
        "markdown": {
            "content": '**Delivery dead**\n<font color="warning">CRITICAL</font>\n'
            "outbox #7 to erp: HTTP 503\n[details](http://x/7)"
        },
    }


def test_wecom_mentions_switch_to_text_with_mobile_and_userid_lists() -> None:
    config = wecom.configure({"key": "k" * 36})
    message = Message(
        "Unclaimed order", "JD 123 waits", "warning", mentions=("13800001111", "wangqing", "@all")
    )
    assert json.loads(wecom.request(config, message, 0).body) == {
        "msgtype": "text",
        "text": {
            "content": "[WARNING] Unclaimed order\nJD 123 waits",
            "mentioned_list": ["wangqing", "@all"],
            "mentioned_mobile_list": ["13800001111"],
        },
    }


def test_wecom_key_may_be_pasted_as_the_whole_url() -> None:
    config = wecom.configure(
        {"key": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc-123"}
    )
    assert config.key == "abc-123"


def test_wecom_long_chinese_text_is_cut_within_4096_bytes_on_a_character() -> None:
    config = wecom.configure({"key": "k" * 36})
    message = Message("告警", "订单同步失败" * 1000, "critical")
    content = json.loads(wecom.request(config, message, 0).body)["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert content.startswith("**告警**") and content.endswith("…")
    content.encode().decode()  # whole characters only


def test_dingtalk_markdown_body_mentions_and_keyword() -> None:
    config = dingtalk.configure({"access_token": "t", "keyword": "orderhook"})
    message = Message(
        "Sync failed",
        "tracking upload refused",
        "warning",
        mentions=("15000000000", "manager01", "@all"),
        url="http://hub/o/1",
    )
    assert json.loads(dingtalk.request(config, message, 0).body) == {
        "msgtype": "markdown",
        "markdown": {
            "title": "Sync failed",
            "text": "#### [WARNING] Sync failed\n\ntracking upload refused\n\n"
            "[details](http://hub/o/1)\n\n@15000000000 @manager01\n\norderhook",
        },
        "at": {"atMobiles": ["15000000000"], "atUserIds": ["manager01"], "isAtAll": True},
    }


def test_dingtalk_keyword_not_repeated_when_present() -> None:
    config = dingtalk.configure({"access_token": "t", "keyword": "orderhook"})
    body = json.loads(dingtalk.request(config, Message("orderhook alert", "x"), 0).body)
    assert body["markdown"]["text"].count("orderhook") == 1


def test_feishu_signed_post_body() -> None:
    config = feishu.configure(
        {"token": "https://open.feishu.cn/open-apis/bot/v2/hook/0f1e-hook", "secret": "demo"}
    )
    message = Message(
        "Order stuck",
        "PDD 9 pending 30 min",
        "warning",
        mentions=("ou_abc", "all"),
        url="http://hub/o/9",
    )
    prepared = feishu.request(config, message, 100.9)
    assert prepared.url == "https://open.feishu.cn/open-apis/bot/v2/hook/0f1e-hook"
    assert json.loads(prepared.body) == {
        "timestamp": "100",
        "sign": "jquNHnVOwmDRfw+vqTIrY5dooJAgi5EcRtLsQE4wfXg=",
        "msg_type": "post",
        "content": {
            "post": {
                "zh_cn": {
                    "title": "[WARNING] Order stuck",
                    "content": [
                        [{"tag": "text", "text": "PDD 9 pending 30 min"}],
                        [{"tag": "a", "text": "details", "href": "http://hub/o/9"}],
                        [{"tag": "at", "user_id": "ou_abc"}, {"tag": "at", "user_id": "all"}],
                    ],
                }
            }
        },
    }


def test_feishu_lark_domain() -> None:
    config = feishu.configure({"token": "abc", "domain": "lark"})
    assert feishu.request(config, Message("t", "x"), 0).url == (
        "https://open.larksuite.com/open-apis/bot/v2/hook/abc"
    )


def test_feishu_whole_body_stays_under_20_kb_with_escapes() -> None:
    config = feishu.configure({"token": "abc", "secret": "s"})
    # quotes and newlines double in JSON: the cut must count the escaped body
    message = Message("t", '"引号"\n' * 5000)
    body = feishu.request(config, message, 0).body
    assert len(body) <= 20000
    text = json.loads(body)["content"]["post"]["zh_cn"]["content"][0][0]["text"]
    assert text.endswith("…") and len(text) > 1000


def test_generic_webhook_verifies_with_the_official_package() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    config = webhook.configure({"url": "https://erp.example/hooks?token=zz", "secret": secret})
    prepared = webhook.request(config, Message("t", "x", "info"), 1764028800.0)
    # the official verifier refuses old timestamps, so it checks a fresh one
    fresh = webhook.request(config, Message("t", "x", "info"), time.time())
    payload = Webhook(secret).verify(fresh.body, fresh.headers)
    assert payload["type"] == "orderhook.notification"
    assert payload["data"] == {
        "title": "t",
        "text": "x",
        "severity": "info",
        "mentions": [],
        "url": None,
    }
    # the same message retried carries the same id, so the receiver can drop the repeat
    assert prepared.headers["webhook-id"] == fresh.headers["webhook-id"]


# --- truncation -------------------------------------------------------------------------


@pytest.mark.parametrize("limit", range(1, 20))
def test_truncate_never_splits_a_character(limit: int) -> None:
    cut = truncate_utf8("订单🚚abc", limit)
    assert len(cut.encode()) <= limit
    assert "\ufffd" not in cut


def test_compose_keeps_head_and_tail() -> None:
    text = compose("HEAD\n", "x" * 100, "\n@13800001111", 40)
    assert text.startswith("HEAD\n") and text.endswith("\n@13800001111")
    assert len(text.encode()) == 40


# --- classification ---------------------------------------------------------------------


def answer(value: dict[str, object]) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("module", "body", "ok", "retryable", "code", "hint"),
    [
        (wecom, {"errcode": 0, "errmsg": "ok"}, True, False, "0", ""),
        (
            wecom,
            {"errcode": 45009, "errmsg": "api freq out of limit"},
            False,
            True,
            "45009",
            "per_minute",
        ),
        (
            wecom,
            {"errcode": 93000, "errmsg": "invalid webhook url"},
            False,
            False,
            "93000",
            "fix `key`",
        ),
        (wecom, {"errcode": -1, "errmsg": "system busy"}, False, True, "-1", "busy"),
        (dingtalk, {"errcode": 0, "errmsg": "ok"}, True, False, "0", ""),
        (
            dingtalk,
            {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"},
            False,
            True,
            "130101",
            "10 minutes",
        ),
        (
            dingtalk,
            {"errcode": 310000, "errmsg": "keywords not in content"},
            False,
            False,
            "310000",
            "`keyword`",
        ),
        (
            dingtalk,
            {"errcode": 310000, "errmsg": "sign not match"},
            False,
            False,
            "310000",
            "`secret`",
        ),
        (
            dingtalk,
            {"errcode": 310000, "errmsg": "invalid timestamp"},
            False,
            False,
            "310000",
            "clock",
        ),
        (
            dingtalk,
            {"errcode": 310000, "errmsg": "ip 1.2.3.4 not in whitelist"},
            False,
            False,
            "310000",
            "whitelist",
        ),
        (
            dingtalk,
            {"errcode": 300005, "errmsg": "token is not exist"},
            False,
            False,
            "300005",
            "`access_token`",
        ),
        (feishu, {"code": 0, "msg": "success", "data": {}, "StatusCode": 0}, True, False, "0", ""),
        (
            feishu,
            {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"},
            False,
            False,
            "19021",
            "`secret`",
        ),
        (feishu, {"code": 19024, "msg": "Key Words Not Found"}, False, False, "19024", "`keyword`"),
        (feishu, {"code": 19022, "msg": "Ip Not Allowed"}, False, False, "19022", "whitelist"),
        (feishu, {"code": 11232, "msg": "frequency limited"}, False, True, "11232", "per_minute"),
        (feishu, {"code": 9499, "msg": "Bad Request"}, False, False, "9499", "bug"),
    ],
)
def test_service_codes_in_http_200_bodies(module, body, ok, retryable, code, hint) -> None:
    result = module.classify(200, answer(body), {})
    assert (result.ok, result.retryable, result.code) == (ok, retryable, code)
    assert hint in result.detail
    if retryable:
        assert result.retry_after and result.retry_after > 0


def test_rate_limit_waits_follow_the_services() -> None:
    assert wecom.classify(200, answer({"errcode": 45009}), {}).retry_after == 60
    # DingTalk throttles an over-eager robot for ten minutes
    assert dingtalk.classify(200, answer({"errcode": 130101}), {}).retry_after == 600


@pytest.mark.parametrize("module", [wecom, dingtalk, feishu])
def test_http_and_body_failures(module) -> None:
    assert module.classify(502, b"<html>bad gateway</html>", {}).retryable
    limited = module.classify(429, b"", {"retry-after": "7"})
    assert limited.retryable and limited.retry_after == 7
    assert not module.classify(404, b"not found", {}).retryable
    assert module.classify(200, b"<html>captive portal</html>", {}).retryable
    assert module.classify(200, answer({"errcode": 987654, "code": 987654}), {}).retryable


def test_generic_webhook_statuses() -> None:
    assert webhook.classify(204, b"", {}).ok
    gone = webhook.classify(410, b"", {})
    assert not gone.retryable and "`url`" in gone.detail
    assert webhook.classify(503, b"", {"retry-after": "30"}).retry_after == 30
    assert not webhook.classify(400, b"bad", {}).retryable


# --- configuration problems -------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "spec", "key"),
    [
        (wecom, {}, "key"),
        (wecom, {"key": "k", "token": "x"}, "token"),
        (dingtalk, {"access_token": "t", "secret": "not-sec"}, "secret"),
        (dingtalk, {"access_token": "https://oapi.dingtalk.com/robot/send"}, "access_token"),
        (feishu, {"token": "t", "domain": "larksuite"}, "domain"),
        (webhook, {"url": "ftp://x", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "url"),
        (webhook, {"url": "https://x", "secret": "not base64!"}, "secret"),
    ],
)
def test_configure_names_the_bad_key(module, spec, key) -> None:
    with pytest.raises(ConfigProblem) as caught:
        module.configure(spec)
    assert caught.value.key == key


def test_redactor_masks_every_registered_secret() -> None:
    redact = Redactor()
    redact.add(["693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa", "SECabc"])
    text = redact("POST https://q/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa sign SECabc")
    assert "693a91f6" not in text and "SECabc" not in text
    assert "***5aaa" in text  # enough to tell robots apart


def test_redactor_cleans_tracebacks_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from connectors.notify import redact

    secret = "robot-key-0123456789abcdef"
    redact.add([secret])
    logger = logging.getLogger("orderhook.notify")
    with caplog.at_level(logging.ERROR, logger="orderhook.notify"):
        try:
            raise RuntimeError(f"POST https://q/send?key={secret} failed")
        except RuntimeError:
            logger.exception("send to %s failed", f"https://q/send?key={secret}")
    assert "RuntimeError" in caplog.text and secret not in caplog.text
