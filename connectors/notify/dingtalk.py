"""DingTalk (钉钉) custom robot: `POST /robot/send?access_token=TOKEN[&timestamp=&sign=]`.

加签 (signing), when the robot has it on: HMAC-SHA256 keyed with the secret over
"{timestamp_ms}\\n{secret}", base64, then URL-encoded (a raw '+' would decode to a space
and fail with "sign not match"); DingTalk refuses timestamps more than an hour off.
A robot may also demand one of its custom keywords in every message (`keyword`).
Failures come back as HTTP 200 with a non-zero `errcode`; 310000 covers every security
check, and only `errmsg` says which. Sources: docs/notifications.md#dingtalk.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from connectors.base import SendResult
from connectors.notify import (
    Codes,
    ConfigProblem,
    Limits,
    Message,
    Prepared,
    base_url,
    by_code,
    check_keys,
    compose,
    credential,
    http_status,
    json_body,
    json_bytes,
    no_code,
    optional_text,
    permanent,
    required_text,
)

# DingTalk states 20/minute; the size limit is only seen in error messages ("exceed 20000
# bytes"), so the text is kept well below it.
LIMITS = Limits(per_minute=20, max_bytes=18000)
KEYS = ("access_token", "secret", "keyword", "base_url")
DEFAULT_BASE = "https://oapi.dingtalk.com"


@dataclass(frozen=True, slots=True)
class Config:
    access_token: str
    secret: str | None = None
    keyword: str | None = None
    base_url: str = DEFAULT_BASE


def configure(spec: Mapping[str, Any]) -> Config:
    check_keys(spec, KEYS)
    try:
        token = credential(required_text(spec, "access_token"), query="access_token")
    except ConfigProblem as exc:
        raise ConfigProblem("access_token", f"access_token: {exc}") from None
    secret = optional_text(spec, "secret")
    if secret is not None and not secret.startswith("SEC"):
        raise ConfigProblem(
            "secret", "a DingTalk signing secret starts with 'SEC' (robot security settings, 加签)"
        )
    return Config(
        access_token=token,
        secret=secret,
        keyword=optional_text(spec, "keyword"),
        base_url=base_url(spec, DEFAULT_BASE),
    )


def robot(config: Config) -> str:
    """Which robot this is: its rate limit is shared by every channel that uses it."""
    return config.access_token


def secrets(config: Config) -> list[str]:
    return [s for s in (config.access_token, config.secret) if s]


def sign(secret: str, timestamp_ms: int) -> str:
    """The base64 signature (before URL-encoding) for `timestamp_ms`."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def url(config: Config, now: float) -> str:
    address = f"{config.base_url}/robot/send?access_token={config.access_token}"
    if config.secret is None:
        return address
    timestamp = int(now * 1000)
    return f"{address}&timestamp={timestamp}&sign={quote_plus(sign(config.secret, timestamp))}"


def body(config: Config, message: Message) -> dict[str, Any]:
    at_all = "@all" in message.mentions or "all" in message.mentions
    people = [m for m in message.mentions if m not in ("@all", "all")]
    mobiles = [m for m in people if m.lstrip("+").isdigit()]
    users = [m for m in people if m not in mobiles]
    # the @ only renders when the text itself names the person
    tail = f"\n\n[details]({message.url})" if message.url else ""
    if people:
        tail += "\n\n" + " ".join(f"@{m}" for m in people)
    if config.keyword and config.keyword not in f"{message.title}{message.text}":
        tail += f"\n\n{config.keyword}"
    head = f"#### [{message.severity.upper()}] {message.title}\n\n"
    return {
        "msgtype": "markdown",
        "markdown": {
            "title": message.title or message.severity,
            "text": compose(head, message.text, tail, LIMITS.max_bytes),
        },
        "at": {"atMobiles": mobiles, "atUserIds": users, "isAtAll": at_all},
    }


def request(config: Config, message: Message, now: float) -> Prepared:
    return Prepared(url=url(config, now), body=json_bytes(body(config, message)))


CODES: Codes = {
    130101: (
        True,
        600.0,
        "sent too fast (20/minute per robot; DingTalk then throttles the "
        "robot for 10 minutes); lower `per_minute` if others share this robot",
    ),
    410100: (True, 600.0, "throttled by DingTalk"),
    -1: (True, 5.0, "DingTalk is busy"),
    300005: (False, None, "token does not exist: fix `access_token`"),
    400101: (False, None, "robot not found: fix `access_token`"),
    400102: (False, None, "robot disabled: fix `access_token` or re-enable the robot"),
    400106: (False, None, "robot not found: fix `access_token`"),
}

# 310000: which security check failed, from errmsg -> which setting to fix
SECURITY = (
    ("keywords", "the text lacks the robot's custom keyword: set `keyword` to one of them"),
    ("sign", "signature refused: fix `secret` (the robot's 加签 secret, SEC...)"),
    ("timestamp", "timestamp refused: this host's clock is more than an hour off (fix NTP)"),
    ("whitelist", "this host's IP is not in the robot's IP whitelist: add it in DingTalk"),
)


def classify(status: int, raw: bytes, headers: Mapping[str, str]) -> SendResult:
    verdict = http_status(status, headers, raw.decode(errors="replace"))
    if verdict is not None:
        return verdict
    data = json_body(raw)
    if data is None or not isinstance(data.get("errcode"), int):
        return no_code("DingTalk", raw, status)
    code, errmsg = data["errcode"], str(data.get("errmsg", ""))
    if code == 310000:
        hint = next(
            (h for word, h in SECURITY if word in errmsg.lower()),
            "a security setting refused the message",
        )
        return permanent("310000", f"DingTalk code 310000: {hint} ({errmsg})", status=status)
    return by_code("DingTalk", code, errmsg, status, CODES)
