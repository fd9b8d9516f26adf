"""Notification channels' wire formats: one module per service, found by kind name.

Each service module (`wecom`, `dingtalk`, `feishu`, `webhook`, `email`) offers:
- `LIMITS`: the service's published rate limit per robot (or None) and message size;
- `KEYS` and `configure(spec) -> Config`: the channel's settings, validated (`ConfigProblem`);
- `secrets(config) -> list[str]`: every credential to mask in errors and logs;
- rate-limited services: `robot(config) -> str`, which robot the channel posts to;
- HTTP services: `request(config, message, now) -> Prepared` and
  `classify(status, body, headers) -> SendResult`;
  email: `async send(config, message) -> SendResult`.

None of them defines a module-level `connector`, so the platform registry skips them.
All facts and their sources are in docs/notifications.md.
"""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectors.base import SendResult

SEVERITIES = ("info", "warning", "critical")


class ConfigProblem(ValueError):
    """A channel setting is wrong: `key` is the offending setting (for the file:line)."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class Message:
    """One notification as the hub means it, before a service shapes it."""

    title: str
    text: str
    severity: str = "info"
    mentions: tuple[str, ...] = ()
    url: str | None = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Message:
        title = payload.get("title")
        text = payload.get("text")
        if not isinstance(title, str) or not isinstance(text, str) or not (title or text):
            raise ValueError("payload needs 'title' and 'text' strings")
        severity = payload.get("severity", "info")
        mentions = payload.get("mentions") or ()
        if isinstance(mentions, str) or not all(isinstance(m, str) for m in mentions):
            raise ValueError("payload 'mentions' must be a list of strings")
        url = payload.get("url")
        return cls(
            title=title,
            text=text,
            # an unknown severity still reaches people; it is shown as a warning
            severity=severity if severity in SEVERITIES else "warning",
            mentions=tuple(dict.fromkeys(mentions)),
            url=url if isinstance(url, str) and url else None,
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """A service's published limits for one robot (None: the service states none)."""

    per_minute: int | None = None
    per_second: int | None = None
    max_bytes: int = 4096  # the largest message the service takes, in its own unit (docs)
    # how much digest text to pack into one message: below max_bytes, so that escaping,
    # the head and the tail never push a digest line past the cut
    digest_bytes: int | None = None

    @property
    def digest_budget(self) -> int:
        return self.digest_bytes or int(self.max_bytes * 0.8)


@dataclass(frozen=True, slots=True)
class Prepared:
    """An HTTP request ready to send; `secrets` are masked wherever it is described."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# --- sizes ------------------------------------------------------------------------------

ELLIPSIS = "…"


def truncate_utf8(text: str, max_bytes: int, marker: str = ELLIPSIS) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, never inside a character, marked when cut."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    room = max_bytes - len(marker.encode())
    if room <= 0:
        return data[:max_bytes].decode(errors="ignore")
    # errors="ignore" drops the partial multi-byte character left at the cut
    return data[:room].decode(errors="ignore") + marker


def compose(head: str, text: str, tail: str, max_bytes: int) -> str:
    """`head + text + tail` within `max_bytes`, cutting only the text (the head carries the
    title and the tail the mentions, which must survive a long text)."""
    room = max_bytes - len(head.encode()) - len(tail.encode())
    if room < 0:
        return truncate_utf8(head + text + tail, max_bytes)
    return head + truncate_utf8(text, room) + tail


def fit(build: Any, text: str, max_bytes: int) -> bytes:
    """The smallest cut of `text` such that `build(text)` (bytes) is within `max_bytes`.

    Services limit the whole body or one field after JSON escaping, so the budget for the
    text is found by measuring the real output rather than guessing the overhead.
    """
    body: bytes = build(text)
    budget = len(text.encode())
    while len(body) > max_bytes and budget > 0:
        budget = max(0, budget - (len(body) - max_bytes) - 8)
        body = build(truncate_utf8(text, budget))
    return body


# --- credentials ------------------------------------------------------------------------


def mask_value(secret: str) -> str:
    """How a credential appears in errors: its last 4 characters, enough to tell robots apart."""
    return f"***{secret[-4:]}" if len(secret) >= 12 else "***"


class Redactor:
    """Replaces every registered credential in a text; also a logging filter, so that
    httpx's request log lines (which carry the full URL) never show a robot key."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secrets: Iterable[str]) -> None:
        new = {s for s in secrets if s and len(s) >= 4} - self._secrets
        if new:
            self._secrets |= new
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: mask_value(m.group(0)), text)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is not None:
            message = record.getMessage()
            cleaned = self(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            if record.exc_info and not record.exc_text:
                # a traceback quotes exception messages, which may quote the URL
                record.exc_text = self(logging.Formatter().formatException(record.exc_info))
        return True


redact = Redactor()
for _name in ("httpx", "httpcore", "orderhook.notify"):
    logging.getLogger(_name).addFilter(redact)


# --- outcomes ---------------------------------------------------------------------------


def ok(status: int | None = None, detail: str = "") -> SendResult:
    return SendResult(ok=True, retryable=False, status=status, code="0", detail=detail)


def retry(
    code: str | None, detail: str, *, status: int | None = None, after: float | None = None
) -> SendResult:
    return SendResult(
        ok=False, retryable=True, status=status, code=code, detail=detail, retry_after=after
    )


def permanent(code: str | None, detail: str, *, status: int | None = None) -> SendResult:
    return SendResult(ok=False, retryable=False, status=status, code=code, detail=detail)


def http_status(status: int, headers: Mapping[str, str], text: str) -> SendResult | None:
    """The verdict from the HTTP status alone, or None when the body must decide (2xx)."""
    if 200 <= status < 300:
        return None
    excerpt = text[:200]
    if status in (408, 425, 429) or status >= 500:
        return retry(
            str(status), f"HTTP {status}: {excerpt}", status=status, after=retry_after(headers)
        )
    return permanent(str(status), f"HTTP {status}: {excerpt}", status=status)


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after", "")
    return float(value) if value.strip().isdigit() else None


def json_body(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


# --- registry ---------------------------------------------------------------------------


@cache
def kinds() -> dict[str, ModuleType]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            found[info.name] = importlib.import_module(f"{__name__}.{info.name}")
    return found


def kind(name: str) -> ModuleType | None:
    return kinds().get(name)


def required_text(spec: Mapping[str, Any], key: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigProblem(key, f"'{key}' is required (a non-empty string)")
    return value.strip()


def optional_text(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigProblem(key, f"'{key}' must be a non-empty string")
    return value.strip()


def check_keys(spec: Mapping[str, Any], known: Iterable[str]) -> None:
    allowed = {"kind", "per_minute", *known}
    for key in spec:
        if key not in allowed:
            raise ConfigProblem(
                key, f"unknown setting '{key}' (known: {', '.join(sorted(allowed))})"
            )


def credential(value: str, *, query: str | None = None, after: str | None = None) -> str:
    """The credential alone, also when a person pasted the whole webhook URL into the file."""
    if not value.startswith(("http://", "https://")):
        return value
    parts = urlsplit(value)
    if query is not None:
        found = parse_qs(parts.query).get(query)
        if found and found[0]:
            return found[0]
        raise ConfigProblem(None, f"the URL has no '{query}=' parameter")
    if after is not None and after in parts.path:
        token = parts.path.split(after, 1)[1].strip("/")
        if token:
            return token
    raise ConfigProblem(None, "the URL does not look like this service's webhook address")


def base_url(spec: Mapping[str, Any], default: str) -> str:
    """`base_url` points a channel at a local fake (tests, the sandbox); default: the service."""
    value = optional_text(spec, "base_url") or default
    if not value.startswith(("http://", "https://")):
        raise ConfigProblem("base_url", "'base_url' must start with http:// or https://")
    return value.rstrip("/")


# code -> (retryable, seconds to wait or None, what it means and which setting to fix)
Codes = Mapping[int, tuple[bool, float | None, str]]


def by_code(service: str, code: int, errmsg: str, status: int, codes: Codes) -> SendResult:
    """The verdict for a service's own error code. Unknown codes are retried: the outbox
    gives up after its attempts and alerts, which beats dropping a message on a guess."""
    if code == 0:
        return ok(status)
    known = codes.get(code)
    if known is None:
        return retry(str(code), f"{service} code {code}: {errmsg}", status=status)
    retryable, wait, meaning = known
    detail = f"{service} code {code}: {meaning} ({errmsg})"
    if retryable:
        return retry(str(code), detail, status=status, after=wait)
    return permanent(str(code), detail, status=status)


def no_code(service: str, raw: bytes, status: int) -> SendResult:
    return retry(
        "bad_response", f"{service} answered without an error code: {raw[:200]!r}", status=status
    )
