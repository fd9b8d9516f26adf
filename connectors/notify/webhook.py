"""A generic signed webhook: the notification as a Standard Webhooks-signed POST.

Body: `{"type": "orderhook.notification", "timestamp": ISO-8601, "data": {title, text,
severity, mentions, url}}`, signed with `connectors.standard` (headers `webhook-id`,
`webhook-timestamp`, `webhook-signature`), so any receiver can check it with the official
`standardwebhooks` package. The `webhook-id` is derived from the message, so a retry of
the same notification carries the same id and the receiver can drop the repeat.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from connectors import standard
from connectors.base import SendResult
from connectors.notify import (
    ConfigProblem,
    Limits,
    Message,
    Prepared,
    check_keys,
    http_status,
    json_bytes,
    ok,
    permanent,
    required_text,
)

LIMITS = Limits(max_bytes=64 * 1024)
KEYS = ("url", "secret")
EVENT_TYPE = "orderhook.notification"


@dataclass(frozen=True, slots=True)
class Config:
    url: str
    secret: str


def configure(spec: Mapping[str, Any]) -> Config:
    check_keys(spec, KEYS)
    url = required_text(spec, "url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigProblem("url", "'url' must be an http:// or https:// address")
    secret = required_text(spec, "secret")
    try:
        standard.secret_bytes(secret)
    except ValueError as exc:
        raise ConfigProblem("secret", str(exc)) from None
    return Config(url=url, secret=secret)


def secrets(config: Config) -> list[str]:
    # a receiver's URL often carries its own token in the query or the user part
    parts = urlsplit(config.url)
    return [s for s in (config.secret, parts.query, parts.password) if s]


def request(config: Config, message: Message, now: float) -> Prepared:
    data = asdict(message) | {"mentions": list(message.mentions)}
    msg_id = "msg_" + hashlib.sha256(json_bytes(data)).hexdigest()[:32]
    body = json_bytes(
        {
            "type": EVENT_TYPE,
            "timestamp": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
            "data": data,
        }
    )
    headers = standard.sign_headers(config.secret, msg_id, body, timestamp=int(now))
    return Prepared(url=config.url, body=body, headers=headers)


def classify(status: int, raw: bytes, headers: Mapping[str, str]) -> SendResult:
    if status == 410:
        return permanent(
            "410", "the receiver says this endpoint is gone (410): fix `url`", status=status
        )
    verdict = http_status(status, headers, raw.decode(errors="replace"))
    return ok(status) if verdict is None else verdict
