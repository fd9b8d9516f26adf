"""The shared runtime of one platform in one event loop (HTTP pool, bucket, breaker,
last-good cache, call counts) and the per-loop registry /metrics reads."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from connectors.apiclient.answers import LastGood
from connectors.apiclient.limits import CircuitBreaker, TokenBucket
from connectors.apiclient.options import limits_from

if TYPE_CHECKING:
    from hub.settings import Shop

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass
class Stats:
    calls: dict[str, int] = field(default_factory=dict)  # outcome -> count

    def count(self, outcome: str) -> None:
        self.calls[outcome] = self.calls.get(outcome, 0) + 1


class PlatformRuntime:
    """Everything shared by the clients of one platform in one event loop."""

    def __init__(
        self,
        platform: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rate: float = 10.0,
        burst: int = 10,
        breaker_threshold: int = 5,
        breaker_reset: float = 30.0,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.platform = platform
        self.http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            headers={"user-agent": "orderhook"},
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self.bucket = TokenBucket(rate, burst)
        self.breaker = CircuitBreaker(breaker_threshold, breaker_reset)
        self.cache = LastGood()
        self.stats = Stats()
        self.users = 0

    async def aclose(self) -> None:
        await self.http.aclose()


# loop -> platform -> runtime; a loop that is gone takes its runtimes with it
_RUNTIMES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, PlatformRuntime]] = (
    weakref.WeakKeyDictionary()
)


def runtime_for(platform: str, shop: Shop | None = None) -> PlatformRuntime:
    """The shared runtime of a platform in the running loop (created on first use, with
    limits from the first shop's options: `api_rate`, `api_burst`,
    `api_breaker_failures`, `api_breaker_reset_seconds`, `api_timeout_seconds`)."""
    per_loop = _RUNTIMES.setdefault(asyncio.get_running_loop(), {})
    found = per_loop.get(platform)
    if found is None or found.http.is_closed:
        found = per_loop[platform] = PlatformRuntime(platform, **limits_from(shop))
    return found


def runtimes() -> list[PlatformRuntime]:
    """The live runtimes of every loop (closed ones are left out)."""
    return [
        r
        for per_loop in list(_RUNTIMES.values())
        for r in per_loop.values()
        if not r.http.is_closed
    ]


def current_runtimes() -> list[PlatformRuntime]:
    """What /metrics and the API show: the running loop's live runtimes (the hub's),
    or every loop's when called outside one."""
    try:
        return [r for r in loop_runtimes().values() if not r.http.is_closed]
    except RuntimeError:
        return runtimes()


def loop_runtimes() -> dict[str, PlatformRuntime]:
    """The shared runtimes of the running loop, by platform."""
    return dict(_RUNTIMES.get(asyncio.get_running_loop(), {}))


async def aclose_loop() -> None:
    """Close the shared runtimes of the running loop (at hub shutdown)."""
    per_loop = _RUNTIMES.pop(asyncio.get_running_loop(), {})
    for runtime in per_loop.values():
        await runtime.aclose()


def register(runtime: PlatformRuntime) -> None:
    """Make a runtime built by hand (an injected transport) visible in /metrics."""
    _RUNTIMES.setdefault(asyncio.get_running_loop(), {})[runtime.platform] = runtime
