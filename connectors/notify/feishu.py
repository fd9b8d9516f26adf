"""Feishu / Lark custom bot: `POST /open-apis/bot/v2/hook/TOKEN`.

Signing, when the bot has it on: HMAC-SHA256 keyed with "{timestamp_s}\\n{secret}" over an
EMPTY message, base64; `timestamp` (seconds, as a string) and `sign` go in the JSON body,
the URL is unchanged (the reverse of DingTalk's recipe). Limits: 100 requests/minute and
5/second per bot, body at most 20 KB. Failures carry a non-zero `code` in the body.
Sources: docs/notifications.md#feishu.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
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
    credential,
    fit,
    http_status,
    json_body,
    json_bytes,
    no_code,
    optional_text,
    required_text,
)

LIMITS = Limits(per_minute=100, per_second=5, max_bytes=20000)
KEYS = ("token", "secret", "keyword", "domain", "base_url")
DOMAINS = {"feishu": "https://open.feishu.cn", "lark": "https://open.larksuite.com"}


@dataclass(frozen=True, slots=True)
class Config:
    token: str
    secret: str | None = None
    keyword: str | None = None
    base_url: str = DOMAINS["feishu"]


def configure(spec: Mapping[str, Any]) -> Config:
    check_keys(spec, KEYS)
    try:
        token = credential(required_text(spec, "token"), after="/bot/v2/hook/")
    except ConfigProblem as exc:
        raise ConfigProblem("token", f"token: {exc}") from None
    domain = spec.get("domain", "feishu")
    if domain not in DOMAINS:
        raise ConfigProblem("domain", f"'domain' is one of {', '.join(DOMAINS)} (got {domain!r})")
    return Config(
        token=token,
        secret=optional_text(spec, "secret"),
        keyword=optional_text(spec, "keyword"),
        base_url=base_url(spec, DOMAINS[domain]),
    )


def robot(config: Config) -> str:
    """Which robot this is: its rate limit is shared by every channel that uses it."""
    return config.token


def secrets(config: Config) -> list[str]:
    return [s for s in (config.token, config.secret) if s]


def sign(secret: str, timestamp_s: int) -> str:
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def body(config: Config, message: Message, now: float, text: str | None = None) -> dict[str, Any]:
    text = message.text if text is None else text
    lines: list[list[dict[str, Any]]] = [[{"tag": "text", "text": text}]]
    if message.url:
        lines.append([{"tag": "a", "text": "details", "href": message.url}])
    if message.mentions:
        # a custom bot can only @ by open_id/user_id, or everyone with "all"
        lines.append(
            [
                {"tag": "at", "user_id": "all" if m in ("@all", "all") else m}
                for m in message.mentions
            ]
        )
    if config.keyword and config.keyword not in f"{message.title}{message.text}":
        lines.append([{"tag": "text", "text": config.keyword}])
    value: dict[str, Any] = {}
    if config.secret is not None:
        timestamp = int(now)
        value = {"timestamp": str(timestamp), "sign": sign(config.secret, timestamp)}
    value["msg_type"] = "post"
    value["content"] = {
        "post": {
            "zh_cn": {"title": f"[{message.severity.upper()}] {message.title}", "content": lines}
        }
    }
    return value


def request(config: Config, message: Message, now: float) -> Prepared:
    # 20 KB is a limit on the whole request body, escapes and all
    raw = fit(
        lambda text: json_bytes(body(config, message, now, text)), message.text, LIMITS.max_bytes
    )
    return Prepared(url=f"{config.base_url}/open-apis/bot/v2/hook/{config.token}", body=raw)


CODES: Codes = {
    11232: (
        True,
        60.0,
        "rate limited by Feishu (100/minute, 5/second per bot; also at busy "
        "times such as on the hour); lower `per_minute` if others share this bot",
    ),
    9499: (False, None, "bad request (orderhook bug: please report)"),
    19021: (
        False,
        None,
        "signature refused: fix `secret`, or this host's clock is more than an hour off",
    ),
    19022: (False, None, "this host's IP is not in the bot's IP whitelist: add it in Feishu"),
    19024: (False, None, "the text lacks the bot's keyword: set `keyword` to one of them"),
}


def classify(status: int, raw: bytes, headers: Mapping[str, str]) -> SendResult:
    data = json_body(raw)
    if data is not None:
        # the legacy StatusCode field is still sent alongside `code` on success
        code = data.get("code", data.get("StatusCode"))
        if isinstance(code, int):
            message = str(data.get("msg", data.get("StatusMessage", "")))
            return by_code("Feishu", code, message, status, CODES)
    verdict = http_status(status, headers, raw.decode(errors="replace"))
    return verdict if verdict is not None else no_code("Feishu", raw, status)
