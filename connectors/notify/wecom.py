"""WeCom (企业微信) group robot, "消息推送": `POST /cgi-bin/webhook/send?key=KEY`.

The key in the URL is the only credential; there is no signing. Markdown messages
(at most 4096 bytes of content) carry colour and `<@userid>`; mentions by mobile number
and `@all` work only in text messages (at most 2048 bytes), so a message that mentions
someone goes out as text. Failures come back as HTTP 200 with a non-zero `errcode`.
Sources: docs/notifications.md#wecom.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    required_text,
)

# a digest that mentions someone goes out as text, limited to 2048 bytes
LIMITS = Limits(per_minute=20, max_bytes=4096, digest_bytes=1800)
KEYS = ("key", "base_url")
TEXT_MAX_BYTES = 2048
DEFAULT_BASE = "https://qyapi.weixin.qq.com"
MOBILE = re.compile(r"^\+?\d{11,15}$")
COLOURS = {"info": "info", "warning": "comment", "critical": "warning"}


@dataclass(frozen=True, slots=True)
class Config:
    key: str
    base_url: str = DEFAULT_BASE


def configure(spec: Mapping[str, Any]) -> Config:
    check_keys(spec, KEYS)
    try:
        key = credential(required_text(spec, "key"), query="key")
    except ConfigProblem as exc:
        raise ConfigProblem("key", f"key: {exc}") from None
    return Config(key=key, base_url=base_url(spec, DEFAULT_BASE))


def robot(config: Config) -> str:
    """Which robot this is: its rate limit is shared by every channel that uses it."""
    return config.key


def secrets(config: Config) -> list[str]:
    return [config.key]


def body(message: Message) -> dict[str, Any]:
    link = f"\n{message.url}" if message.url else ""
    if message.mentions:
        content = compose(
            f"[{message.severity.upper()}] {message.title}\n", message.text, link, TEXT_MAX_BYTES
        )
        return {
            "msgtype": "text",
            "text": {
                "content": content,
                "mentioned_list": [m for m in message.mentions if not MOBILE.match(m)],
                "mentioned_mobile_list": [m for m in message.mentions if MOBILE.match(m)],
            },
        }
    colour = COLOURS[message.severity]
    head = f'**{message.title}**\n<font color="{colour}">{message.severity.upper()}</font>\n'
    tail = f"\n[details]({message.url})" if message.url else ""
    return {
        "msgtype": "markdown",
        "markdown": {"content": compose(head, message.text, tail, LIMITS.max_bytes)},
    }


def request(config: Config, message: Message, now: float) -> Prepared:
    return Prepared(
        url=f"{config.base_url}/cgi-bin/webhook/send?key={config.key}",
        body=json_bytes(body(message)),
    )


CODES: Codes = {
    45009: (
        True,
        60.0,
        "rate limited by WeCom (20 messages/minute per robot); if other "
        "senders share this robot, lower `per_minute`",
    ),
    -1: (True, 5.0, "WeCom is busy"),
    93000: (
        False,
        None,
        "invalid webhook key: fix `key` (robot removed, key mistyped, or "
        "the group is an external group, where robots do not work)",
    ),
    40008: (False, None, "invalid message type (orderhook bug: please report)"),
    44004: (False, None, "empty content"),
    45002: (False, None, "content too large (orderhook bug: please report)"),
    40007: (False, None, "invalid media_id"),
}


def classify(status: int, raw: bytes, headers: Mapping[str, str]) -> SendResult:
    verdict = http_status(status, headers, raw.decode(errors="replace"))
    if verdict is not None:
        return verdict
    data = json_body(raw)
    if data is None or not isinstance(data.get("errcode"), int):
        return no_code("WeCom", raw, status)
    return by_code("WeCom", data["errcode"], str(data.get("errmsg", "")), status, CODES)
