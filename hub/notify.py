"""Notification channels: the `[notify]` config, sending one queued notification, and
queueing operational alerts.

    [notify]
    alerts = ["ops-wecom", "ops-mail"]      # who hears about dead deliveries etc.

    [notify.channels.ops-wecom]
    kind = "wecom"                          # wecom | dingtalk | feishu | email | webhook
    key = "env:WECOM_KEY"                   # credentials come from the environment

The outbox calls `deliver(hub, target, payload, http)` for each `notify` row; a decision
that must tell people calls `alert(conn, settings, title=..., text=...)` inside its own
transaction. Each robot gets a token bucket below its service's published limit; calls
that arrive while it is empty wait for the next token together and go out as ONE digest,
so a burst is merged, never dropped, and each call returns only once its message is out.
Wire formats live in `connectors/notify/`; docs/notifications.md has the rules and sources.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import sqlite3
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx

from connectors import notify as wire
from connectors.base import SendResult
from connectors.notify import SEVERITIES, ConfigProblem, Message
from hub.model import utcnow
from hub.store.outbox_sql import enqueue

if TYPE_CHECKING:
    from hub.runtime import Hub
    from hub.settings import Settings

log = logging.getLogger("orderhook.notify")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HTTP_TIMEOUT = 10.0
MAX_WAIT = 30.0  # longest a call waits for a token before handing the row back to the outbox


# --- configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    name: str
    kind: str
    config: Any
    per_minute: int | None = None
    per_second: int | None = None

    @property
    def module(self) -> ModuleType:
        module = wire.kind(self.kind)
        assert module is not None
        return module


@dataclass(frozen=True)
class NotifySettings:
    channels: dict[str, Channel] = field(default_factory=dict)
    alerts: tuple[str, ...] = ()


def parse_section(table: Any, fail: Callable[..., Exception]) -> NotifySettings:
    """`[notify]` -> NotifySettings (registered in hub.settings.SECTIONS)."""
    if not isinstance(table, dict):
        raise fail("[notify] must be a table", "notify")
    for key in table:
        if key not in ("alerts", "channels"):
            raise fail(f"notify.{key}: unknown setting (known: alerts, channels)", "notify", key)
    raw_channels = table.get("channels", {})
    if not isinstance(raw_channels, dict):
        raise fail("notify.channels must be a table of channels", "notify")
    channels = {name: _channel(name, spec, fail) for name, spec in raw_channels.items()}
    alerts = table.get("alerts", [])
    if not isinstance(alerts, list) or not all(isinstance(a, str) for a in alerts):
        raise fail("notify.alerts: a list of channel names", "notify", "alerts")
    for name in alerts:
        if name not in channels:
            known = ", ".join(sorted(channels)) or "none configured"
            raise fail(
                f"notify.alerts: {name!r} is not a channel (known: {known})", "notify", "alerts"
            )
    for channel in channels.values():
        wire.redact.add(channel.module.secrets(channel.config))
    return NotifySettings(channels=channels, alerts=tuple(dict.fromkeys(alerts)))


def _channel(name: str, spec: Any, fail: Callable[..., Exception]) -> Channel:
    where = f"notify.channels.{name}"
    if not isinstance(spec, dict):
        raise fail(f"{where}: must be a table", where)
    if not NAME.match(name):
        raise fail(f"{where}: channel names are letters, digits, '-', '_' and '.'", where)
    kind = spec.get("kind")
    module = wire.kind(kind) if isinstance(kind, str) else None
    if module is None or not isinstance(kind, str):
        raise fail(
            f"{where}.kind: {kind!r} is not a channel kind "
            f"(known: {', '.join(sorted(wire.kinds()))})",
            where,
            "kind",
        )
    resolved = {}
    for key, value in spec.items():
        if isinstance(value, str) and value.startswith("env:"):
            if not os.environ.get(value[4:]):
                raise fail(
                    f"{where}.{key}: environment variable {value[4:]} is not set", where, key
                )
            value = os.environ[value[4:]]
        resolved[key] = value
    try:
        config = module.configure(resolved)
    except ConfigProblem as exc:
        key = exc.key or "kind"
        raise fail(f"{where}.{key}: {wire.redact(str(exc))}", where, key) from None
    limits: wire.Limits = module.LIMITS
    per_minute = spec.get("per_minute", limits.per_minute)
    if per_minute is not None and (
        not isinstance(per_minute, int) or isinstance(per_minute, bool) or per_minute < 1
    ):
        raise fail(
            f"{where}.per_minute: a whole number of messages per minute", where, "per_minute"
        )
    if limits.per_minute and per_minute and per_minute > limits.per_minute:
        raise fail(
            f"{where}.per_minute: {per_minute} is above the service's published limit "
            f"of {limits.per_minute} per robot",
            where,
            "per_minute",
        )
    return Channel(name, kind, config, per_minute, limits.per_second)


def section(settings: Settings) -> NotifySettings:
    found = settings.sections.get("notify")
    return found if isinstance(found, NotifySettings) else NotifySettings()


# --- rate limiting and digests ----------------------------------------------------------


class TokenBucket:
    """At most `limit` sends in ANY window of `window` seconds, sliding.

    A bucket of capacity `burst` refilled at `rate` lets through at most
    burst + rate * window in a window; with burst = 10% of the limit and the rest as rate,
    that is exactly the limit (20/min -> burst 2 + 18/min; 5/s -> burst 1 + 4/s).
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.burst = max(1, round(limit * 0.1))
        self.rate = max(limit - self.burst, 1) / window
        self.clock = clock
        self.tokens = float(self.burst)
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self) -> float:
        """Seconds until a token is free (0: now)."""
        self._refill()
        ahead = max(0.0, self.stamp - self.clock())  # blocked by the service until then
        # a hair under one token counts as one: float refills must not leave a 1e-15 s wait
        return ahead + (0.0 if self.tokens >= 1 - 1e-9 else (1 - self.tokens) / self.rate)

    def take(self) -> None:
        self.tokens -= 1

    def block(self, seconds: float) -> None:
        """The service said "too fast": nothing goes out for `seconds`."""
        self._refill()
        self.tokens = min(self.tokens, 0.0)
        self.stamp = max(self.stamp, self.clock() + seconds)


Send = Callable[[Sequence[Message]], Awaitable[SendResult]]


@dataclass(eq=False)
class _Waiter:
    message: Message
    send: Send
    future: asyncio.Future[SendResult]


class Throttle:
    """One robot's buckets plus the calls waiting for a token (merged when it comes)."""

    def __init__(
        self,
        limits: Sequence[tuple[int, float]],
        *,
        digest_bytes: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self.buckets = [TokenBucket(limit, window, clock) for limit, window in limits]
        self.digest_bytes = digest_bytes
        self.sleep = sleep
        self.max_wait = max_wait
        self.waiting: list[_Waiter] = []
        self.flusher: asyncio.Task[None] | None = None

    def _wait(self) -> float:
        return max((b.wait() for b in self.buckets), default=0.0)

    def _take(self) -> None:
        for bucket in self.buckets:
            bucket.take()

    async def submit(self, message: Message, send: Send) -> SendResult:
        wait = self._wait()
        if not self.waiting and wait == 0:
            self._take()
            return await self._send(send, [message])
        if wait > self.max_wait:
            return wire.retry(
                "throttled", f"rate limit: next send possible in {wait:.0f} s", after=wait
            )
        waiter = _Waiter(message, send, asyncio.get_running_loop().create_future())
        self.waiting.append(waiter)
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush())
        try:
            async with asyncio.timeout(self.max_wait):  # not wait_for: it can eat a cancel
                return await asyncio.shield(waiter.future)
        except TimeoutError:
            if waiter in self.waiting:
                self.waiting.remove(waiter)
                return wire.retry(
                    "throttled", "rate limit: no send slot in time", after=self._wait()
                )
            return await waiter.future  # already going out in a digest: report that
        except asyncio.CancelledError:
            if waiter in self.waiting:
                self.waiting.remove(waiter)
            raise

    async def _flush(self) -> None:
        while self.waiting:
            wait = self._wait()
            if wait > 0:
                await self.sleep(max(wait, 0.001))
                continue
            self._take()
            batch = self._pack()
            # if this task is cancelled mid-send, the callers still get an answer (retry)
            result = wire.retry("interrupted", "the send was interrupted (shutdown?)")
            try:
                result = await self._send(batch[0].send, [w.message for w in batch])
            finally:
                for waiter in batch:
                    if not waiter.future.done():
                        waiter.future.set_result(result)

    def _pack(self) -> list[_Waiter]:
        """As many waiting messages as one digest shows in full lines; the rest wait."""
        batch: list[_Waiter] = []
        used = 0
        for waiter in self.waiting:
            size = len(digest_line(waiter.message).encode()) + 1
            if batch and used + size > self.digest_bytes:
                break
            batch.append(waiter)
            used += size
        del self.waiting[: len(batch)]
        return batch

    async def _send(self, send: Send, messages: Sequence[Message]) -> SendResult:
        try:
            result = await send(messages)
        except Exception as exc:  # a bug must not strand the callers waiting on this send
            log.exception("notification send failed")
            result = wire.retry("error", f"{type(exc).__name__}: {exc}")
        if not result.ok and result.retryable and result.retry_after:
            for bucket in self.buckets:
                bucket.block(result.retry_after)
        return result


RANK = {s: i for i, s in enumerate(SEVERITIES)}
DIGEST_LINE_BYTES = 240


def digest_line(message: Message) -> str:
    first = message.text.strip().splitlines()[0] if message.text.strip() else ""
    line = f"[{message.severity.upper()}] {message.title}: {first}"
    return wire.truncate_utf8(line, DIGEST_LINE_BYTES)


def digest(messages: Sequence[Message]) -> Message:
    """Many messages as one: a line each, the highest severity, everyone mentioned."""
    if len(messages) == 1:
        return messages[0]
    worst = max((m.severity for m in messages), key=RANK.__getitem__)
    counts = {s: sum(m.severity == s for m in messages) for s in reversed(SEVERITIES)}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return Message(
        title=f"{len(messages)} notifications ({summary})",
        text="\n".join(digest_line(m) for m in messages),
        severity=worst,
        mentions=tuple(dict.fromkeys(x for m in messages for x in m.mentions)),
    )


# --- sending ----------------------------------------------------------------------------

_throttles: weakref.WeakKeyDictionary[Hub, dict[tuple[Any, ...], Throttle]] = (
    weakref.WeakKeyDictionary()
)


def throttle(hub: Hub, channel: Channel) -> Throttle | None:
    """The buckets of the robot behind `channel`: the limit is per robot, so channels that
    share one robot (the same key under two names) share its buckets too."""
    limits = [(n, w) for n, w in ((channel.per_minute, 60.0), (channel.per_second, 1.0)) if n]
    if not limits:
        return None
    per_hub = _throttles.setdefault(hub, {})
    robot = (channel.kind, channel.module.robot(channel.config), *limits)
    found = per_hub.get(robot)  # a reloaded config with other limits gets a fresh one
    if found is None:
        found = per_hub[robot] = Throttle(limits, digest_bytes=channel.module.LIMITS.digest_budget)
    return found


async def send_now(channel: Channel, message: Message, http: httpx.AsyncClient) -> SendResult:
    """One message to one channel, no rate limiting; the result's detail names the channel
    and never shows a credential."""
    module = channel.module
    try:
        if hasattr(module, "send"):
            result: SendResult = await module.send(channel.config, message)
        else:
            prepared = module.request(channel.config, message, time.time())
            response = await http.post(
                prepared.url,
                content=prepared.body,
                headers=prepared.headers,
                timeout=HTTP_TIMEOUT,
            )
            result = module.classify(response.status_code, response.content, response.headers)
    except httpx.TimeoutException as exc:
        result = wire.retry("timeout", f"no answer in time: {type(exc).__name__}")
    except httpx.HTTPError as exc:
        result = wire.retry("connect", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # the outbox keeps the row and retries; the log has the trace
        log.exception("notify.channels.%s: unexpected error", channel.name)
        result = wire.retry("error", f"{type(exc).__name__}: {exc}")
    return replace(
        result,
        detail=wire.redact(f"notify.channels.{channel.name} ({channel.kind}): {result.detail}"),
    )


async def deliver(
    hub: Hub, target: str, payload: dict[str, Any], http: httpx.AsyncClient
) -> SendResult:
    """Send one queued notification to channel `target` (the outbox's `notify` rows).

    Safe to call concurrently for one channel; calls that meet an empty bucket are merged
    into one digest and all return that send's result."""
    channels = section(hub.settings).channels
    channel = channels.get(target)
    if channel is None:
        known = ", ".join(sorted(channels)) or "none configured"
        result = wire.permanent(
            "unknown_channel", f"no channel {target!r} in [notify.channels] (known: {known})"
        )
    else:
        try:
            message = Message.from_payload(payload)
        except ValueError as exc:
            result = wire.permanent("bad_payload", str(exc))
        else:
            gate = throttle(hub, channel)

            async def send(messages: Sequence[Message]) -> SendResult:
                if len(messages) > 1:
                    hub.metrics.notify_merged.labels(target).inc(len(messages))
                return await send_now(channel, digest(messages), http)

            result = await (gate.submit(message, send) if gate else send([message]))
    outcome = "ok" if result.ok else ("retry" if result.retryable else "failed")
    hub.metrics.notify_sends.labels(target, outcome).inc()
    return result


def alert(
    conn: sqlite3.Connection,
    settings: Settings,
    *,
    title: str,
    text: str,
    severity: str = "critical",
) -> list[int]:
    """Queue `title`/`text` for every alert channel in the caller's transaction.

    Returns the new outbox ids. The same alert raised again within the same minute is
    queued once (a storm of identical failures is one message, not fifty)."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
    fingerprint = hashlib.sha256(f"{severity}\n{title}\n{text}".encode()).hexdigest()[:16]
    minute = utcnow().strftime("%Y%m%dT%H%M")
    ids = []
    for name in section(settings).alerts:
        row = enqueue(
            conn,
            kind="notify",
            target=name,
            payload={"title": title, "text": text, "severity": severity},
            dedupe_key=f"alert:{name}:{fingerprint}:{minute}",
        )
        if row is not None:
            ids.append(row)
    return ids


def describe(channel: Channel) -> Mapping[str, Any]:
    """A channel's settings for people (CLI): credentials masked."""
    shown = {f.name: getattr(channel.config, f.name) for f in fields(channel.config)}
    return {
        "name": channel.name,
        "kind": channel.kind,
        "per_minute": channel.per_minute,
        **{k: wire.redact(v) if isinstance(v, str) else v for k, v in shown.items()},
    }
