"""What every platform API client shares: one HTTP pool, a rate limit and a circuit
breaker per platform, a last-good cache for read calls, and typed errors.

    client = connectors.api_client(shop)        # connectors/<platform>/api.py: Client
    await client.ship(order_id, carrier, tracking_no)
    async for event in client.changed_orders(start, end): ...
    await client.aclose()

A platform module subclasses `BaseClient` and supplies three things: how to build a
signed `httpx.Request` for a method and its business params, how to read the
platform's error shape into an `ApiError`, and the calls themselves.

Degradation, in the order a call meets it:
1. the platform's circuit breaker: when open, a read call is answered from the last
   good response for the same params (marked stale) and a write call fails fast with
   `PlatformBusy("circuit_open")` so the outbox keeps it for later;
2. the platform's token bucket: waits for a token (never fails);
3. the request, with timeouts; 5xx, timeouts, transport errors and the platform's own
   "busy" codes count against the breaker, answers (even errors) close it again.

Errors (from `connectors.base`):

    ApiError
    ├── AuthExpired        token expired/revoked: re-authorise, no retry
    ├── RateLimited        the platform said slow down (retry_after when known)
    ├── InvalidParameter   our request is wrong: no retry
    └── PlatformBusy       5xx, timeout, circuit open, isp.*: retry with backoff

`needs_person(error)` tells the two halves apart: AuthExpired and InvalidParameter
come back the same on every retry until someone changes the shop's token, secret,
app key or permissions; RateLimited and PlatformBusy pass by themselves.

State is per platform per event loop (an `httpx.AsyncClient` is bound to its loop);
`runtimes()` lists them for /metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import httpx

from connectors.base import (
    ApiError,
    AuthExpired,
    InvalidParameter,
    PlatformBusy,
    RateLimited,
    SendResult,
)
from hub.model import SHANGHAI, Kind, OrderEvent, from_unix, shanghai_to_utc, utcnow

if TYPE_CHECKING:
    from hub.settings import Shop

log = logging.getLogger("orderhook.api")

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


# --- rate limit -------------------------------------------------------------------------


class TokenBucket:
    """`rate` calls per second on average, bursts up to `burst`. `acquire` waits for a
    token; `pause(seconds)` empties the bucket when the platform says we went too fast."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_acquire(self) -> float:
        """Take a token if there is one (returns 0.0), else how long until there is."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate

    async def acquire(self) -> None:
        async with self._lock:  # FIFO-ish: one waiter at a time takes the next token
            while (wait := self.try_acquire()) > 0:
                await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        self._refill()
        self._tokens = min(self._tokens, 0.0) - seconds * self.rate


# --- circuit breaker --------------------------------------------------------------------


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Opens after `threshold` consecutive failures (5xx, timeouts, platform busy); after
    `reset_seconds` lets one trial call through (half-open): success closes it, failure
    opens it again for another `reset_seconds`."""

    def __init__(
        self,
        threshold: int = 5,
        reset_seconds: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._trial_running = False
        self.last_error = ""

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self.opened_at >= self.reset_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a call go out now? In half-open, only one trial at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def end_trial(self) -> None:
        self._trial_running = False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial_running = False

    def failure(self, reason: str) -> None:
        self.last_error = reason
        self._trial_running = False
        self.failures += 1
        if self.opened_at is not None or self.failures >= self.threshold:
            if self.opened_at is None or self.state is not BreakerState.OPEN:
                log.warning("circuit opened after %d failures: %s", self.failures, reason)
            self.opened_at = self._clock()

    def retry_after(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.reset_seconds - (self._clock() - self.opened_at))


# --- last-good cache --------------------------------------------------------------------


@dataclass(slots=True)
class Answer:
    """A platform's answer to one call: the raw bytes (kept as evidence) and the parsed
    body. `stale` says it came from the last-good cache, not from the platform now."""

    method: str
    params: dict[str, Any]
    raw: bytes
    body: Any
    stale: bool = False

    def page(self, events: list[OrderEvent], window: tuple[datetime, datetime]) -> Page:
        return Page(self.method, self.params, self.raw, events, self.stale, window)


class LastGood:
    """The most recent successful answer per (shop, method, params), bounded LRU."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[str, Answer] = OrderedDict()

    @staticmethod
    def key(shop: str, method: str, params: dict[str, Any]) -> str:
        return f"{shop}\x1f{method}\x1f" + json.dumps(params, sort_keys=True, default=str)

    def put(self, key: str, answer: Answer) -> None:
        self._items[key] = answer
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, key: str) -> Answer | None:
        return self._items.get(key)


# --- per-platform runtime ---------------------------------------------------------------


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


LIMIT_OPTIONS = (  # shop option, PlatformRuntime argument, type
    ("api_rate", "rate", float),
    ("api_burst", "burst", int),
    ("api_breaker_failures", "breaker_threshold", int),
    ("api_breaker_reset_seconds", "breaker_reset", float),
    ("api_timeout_seconds", "timeout", float),
)


def limits_from(shop: Shop | None) -> dict[str, Any]:
    """PlatformRuntime arguments from a shop's `api_*` options; ValueError names the
    option and what is wrong with it."""
    options = shop.options if shop is not None else {}
    limits: dict[str, Any] = {}
    for key, name, cast in LIMIT_OPTIONS:
        if key in options:
            number = positive(options, key, cast=cast)
            limits[name] = httpx.Timeout(number) if name == "timeout" else number
    return limits


def positive(options: dict[str, Any], key: str, default: Any = None, cast: Any = float) -> Any:
    """A positive number option (`cast` of it), or ValueError naming the option."""
    value = options.get(key, default)
    try:
        number = cast(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number <= 0:
        raise ValueError(f"options.{key}: {value!r} must be a positive number")
    return number


def check_options(shop: Shop) -> None:
    """Validate a shop's API options at config time (ValueError with the option name)."""
    limits_from(shop)
    module = __import__(f"connectors.{shop.platform}.api", fromlist=["Client"])
    methods = module.Client.sign_methods
    method = shop.options.get("sign_method", methods[0])
    if method not in methods:
        raise ValueError(f"options.sign_method: {method!r} is not one of {', '.join(methods)}")


def needs_person(error: ApiError) -> bool:
    """Will this error come back on every retry until a person changes the shop's
    config (a missing or expired token, a refused signature or app key, a call the app
    may not make)? The error classes say it: only RateLimited and PlatformBusy are
    worth retrying as they are."""
    return not error.retryable


# --- helpers the platform modules share -------------------------------------------------


def beijing(moment: datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A time as Beijing wall time text, whatever the host's time zone."""
    if moment.tzinfo is None:
        raise ValueError("aware datetime required")
    return moment.astimezone(SHANGHAI).strftime(fmt)


def option_secret(shop: Shop, key: str, env: dict[str, str] | None = None) -> str | None:
    """A shop option that may be `env:VAR` (tokens are credentials too)."""
    value = shop.options.get(key)
    if value is None or value == "":
        return None
    text = str(value)
    if text.startswith("env:"):
        found = (os.environ if env is None else env).get(text[4:])
        if not found:
            raise AuthExpired("missing_token", f"environment variable {text[4:]} is not set")
        return found
    return text


def load_json(raw: bytes) -> Any:
    """Parse a platform answer keeping big ids exact (ints stay ints, decimals Decimal)."""
    return json.loads(raw, parse_float=Decimal)


def compact(params: dict[str, Any]) -> dict[str, Any]:
    """Never send empty params: SDKs disagree on whether they are signed."""
    return {k: v for k, v in params.items() if v is not None and v != ""}


def param_text(value: Any) -> str:
    """A business param as the Java SDKs send it: primitives via String.valueOf
    (`true`/`false` for booleans), objects and lists as compact JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def windows(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive windows no longer than `size`."""
    out: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        stop = min(end, cursor + size)
        out.append((cursor, stop))
        cursor = stop
    return out


@dataclass(slots=True)
class Page:
    """One answer of the incremental order query: its bytes and the events in it."""

    method: str
    params: dict[str, Any]
    raw: bytes
    events: list[OrderEvent]
    stale: bool = False
    window: tuple[datetime, datetime] | None = None  # the time window it answers
    bad_rows: int = 0  # order rows that could not be turned into events


# --- the base client --------------------------------------------------------------------


class BaseClient:
    """Shared call path; subclasses set `platform` and implement `build_request`,
    `read_error`, `ship`, `changed_pages`."""

    platform: ClassVar[str] = ""
    # longest window the incremental query accepts (platform rule), and page size
    max_window: ClassVar[timedelta] = timedelta(hours=1)
    page_size: ClassVar[int] = 100
    # page numbers typed String in the platform's doc are sent as JSON strings
    page_as_text: ClassVar[bool] = False

    def __init__(
        self,
        shop: Shop,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        runtime: PlatformRuntime | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not shop.app_key:
            raise InvalidParameter("missing_app_key", f"shop {shop.name} has no app_key")
        self.shop = shop
        self.clock = clock
        self._transport = transport
        self._runtime = runtime
        self._owns_runtime = False
        base = shop.api_base or self.default_base
        self.base = base.rstrip("/")

    default_base: ClassVar[str] = ""
    # sign methods the platform accepts; the first is the default (`options.sign_method`)
    sign_methods: ClassVar[tuple[str, ...]] = ("md5",)

    @property
    def sign_method(self) -> str:
        method = str(self.shop.options.get("sign_method", self.sign_methods[0]))
        if method not in self.sign_methods:
            raise InvalidParameter(
                "bad_sign_method", f"{self.platform} sign_method must be one of {self.sign_methods}"
            )
        return method

    @property
    def runtime(self) -> PlatformRuntime:
        """Resolved on first use, inside the event loop the client is used in."""
        if self._runtime is None:
            if self._transport is not None:
                limits = limits_from(self.shop)
                self._runtime = PlatformRuntime(self.platform, transport=self._transport, **limits)
                self._owns_runtime = True
                register(self._runtime)
            else:
                self._runtime = runtime_for(self.platform, self.shop)
        return self._runtime

    # platform hooks --------------------------------------------------------------------

    def build_request(self, method: str, params: dict[str, Any]) -> httpx.Request:
        raise NotImplementedError

    def read_error(self, method: str, status: int, body: Any) -> ApiError | None:
        """The platform's error in the parsed body, as a typed error (None: success)."""
        raise NotImplementedError

    async def ship(self, order_id: str, carrier: str, tracking_no: str) -> SendResult:
        raise NotImplementedError

    def changed_pages(self, start: datetime, end: datetime) -> AsyncIterator[Page]:
        raise NotImplementedError

    # shared ----------------------------------------------------------------------------

    def events(self, row: dict[str, Any]) -> list[OrderEvent]:
        """Canonical events from one order row of the incremental query."""
        raise NotImplementedError

    async def walk(
        self,
        method: str,
        params: dict[str, Any],
        window: tuple[datetime, datetime],
        *,
        rows: Callable[[Any], Any],  # the page's order rows (None when absent)
        total: Callable[[Any], Any],
        page_key: str = "page",
        first_page: int = 1,
        backwards: bool = False,
        first: Answer | None = None,
    ) -> AsyncIterator[Page]:
        """Every page of one window: the first answer gives the total, then each page in
        turn (`backwards`: last page first, as Taobao and Pinduoduo ask, so orders that
        change while we page are not skipped)."""

        def numbered(number: int) -> dict[str, Any]:
            return {**params, page_key: str(number) if self.page_as_text else number}

        if first is None:
            first = await self.call(method, numbered(first_page), read=True)
        count = max(1, math.ceil(int(total(first.body) or 0) / self.page_size))
        numbers = range(first_page, first_page + count)
        for number in reversed(numbers) if backwards else numbers:
            answer = (
                first
                if number == first_page
                else await self.call(method, numbered(number), read=True)
            )
            events: list[OrderEvent] = []
            bad = 0
            for row in rows(answer.body) or []:
                try:
                    events.extend(self.events(row))
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    # one unreadable order must not block the window; the page's bytes
                    # are recorded with the count so a person can look
                    log.warning(
                        "%s %s: unreadable order row (%r): %.200s", self.platform, method, exc, row
                    )
                    bad += 1
            page = answer.page(events, window)
            page.bad_rows = bad
            yield page

    async def changed_orders(self, start: datetime, end: datetime) -> AsyncIterator[OrderEvent]:
        async for page in self.changed_pages(start, end):
            for event in page.events:
                yield event

    async def aclose(self) -> None:
        # the shared runtime outlives one client; a private one (injected transport) not
        if self._owns_runtime and self._runtime is not None:
            await self._runtime.aclose()

    async def call(self, method: str, params: dict[str, Any], *, read: bool) -> Answer:
        """One API call through breaker, bucket and cache; raises a typed ApiError."""
        rt = self.runtime
        params = compact(params)
        key = LastGood.key(self.shop.name, method, params)
        if not rt.breaker.allow():
            rt.stats.count("circuit_open")
            cached = rt.cache.get(key) if read else None
            if cached is not None:
                rt.stats.count("stale")
                return Answer(method, params, cached.raw, cached.body, stale=True)
            raise PlatformBusy(
                "circuit_open",
                f"{self.platform} API circuit is open after repeated failures "
                f"({rt.breaker.last_error}); retry in {rt.breaker.retry_after():.0f} s",
            )
        try:
            return await self._exchange(method, params, key, read)
        finally:
            # a half-open trial that ended without a verdict (a config error while
            # signing, a cancellation) must not keep the circuit shut forever
            rt.breaker.end_trial()

    async def _exchange(self, method: str, params: dict[str, Any], key: str, read: bool) -> Answer:
        rt = self.runtime
        await rt.bucket.acquire()
        request = self.build_request(method, params)
        try:
            response = await rt.http.send(request)
            raw = await response.aread()
        except httpx.TimeoutException as exc:
            return self._failed(key, read, PlatformBusy("timeout", f"{method}: {exc!r}"))
        except httpx.TransportError as exc:
            return self._failed(key, read, PlatformBusy("transport", f"{method}: {exc!r}"))
        status = response.status_code
        if status >= 500:
            return self._failed(
                key, read, PlatformBusy(f"http_{status}", f"{method}: HTTP {status}", raw=raw)
            )
        try:
            body = load_json(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            if status == 429:
                error: ApiError = RateLimited("http_429", f"{method}: HTTP 429", raw=raw)
            else:
                error = PlatformBusy(f"http_{status}", f"{method}: answer is not JSON", raw=raw)
            return self._failed(key, read, error)
        error_or_none = self.read_error(method, status, body)
        if status == 429 and not isinstance(error_or_none, RateLimited):
            error_or_none = RateLimited("http_429", f"{method}: HTTP 429", raw=body)
        elif error_or_none is None and status >= 400:
            error_or_none = InvalidParameter(f"http_{status}", f"{method}: HTTP {status}", raw=body)
        if error_or_none is not None:
            return self._failed(key, read, error_or_none)
        rt.breaker.success()
        rt.stats.count("ok")
        answer = Answer(method, params, raw, body)
        if read:
            rt.cache.put(key, answer)
        return answer

    def _failed(self, key: str, read: bool, error: ApiError) -> NoReturn:
        rt = self.runtime
        rt.stats.count(type(error).__name__)
        if isinstance(error, PlatformBusy):
            rt.breaker.failure(f"{error.code}: {error.message}"[:200])
        else:
            # the platform answered: it is up, whatever it thought of our request
            rt.breaker.success()
        if isinstance(error, RateLimited):
            rt.bucket.pause(error.retry_after or 1.0)
        raise error


def ship_result(answer: Answer, success: Any = True) -> SendResult:
    """A ship call's answer as the outbox records it (the platform's answer as detail);
    `success` is the answer's own verdict, where it has one."""
    if success is False:
        raise InvalidParameter("not_shipped", "platform answered is_success=false", raw=answer.body)
    detail = answer.raw[:500].decode(errors="replace")
    return SendResult(ok=True, retryable=False, status=200, detail=detail)


@dataclass(frozen=True, slots=True)
class Milestone:
    """One transition an order's current state proves happened, and when."""

    kind: Kind
    at: datetime | None
    platform_type: str


def milestone_events(
    client: BaseClient,
    order_id: Any,
    milestones: list[Milestone],
    *,
    amount: Decimal | None,
    payload: Any,
) -> list[OrderEvent]:
    """Canonical events for every milestone with a known time: a poll sees only the
    current state, but the times in it say which earlier transitions happened, so a
    lost "paid" push is recovered even when the order has shipped since. Each event
    carries the default content key, which is what dedupes it against the push."""
    events: list[OrderEvent] = []
    for m in milestones:
        if m.at is None:
            continue
        events.append(
            OrderEvent(
                platform=client.platform,
                shop=client.shop.name,
                kind=m.kind,
                order_id=str(order_id),
                occurred_at=m.at,
                platform_type=m.platform_type,
                amount=amount,
                currency="CNY" if amount is not None else None,
                payload=payload,
                source="reconcile",
            )
        )
    return events


def carrier_code(options: dict[str, Any], carrier: str) -> str:
    """The platform's own carrier code: `options.carriers` maps the hub's names to it
    (e.g. `carriers = {SF = "SF"}`); an unmapped name is sent as given."""
    mapping = options.get("carriers") or {}
    return str(mapping.get(carrier, carrier)) if isinstance(mapping, dict) else carrier


def first_of(row: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = row.get(key)
        if value not in (None, "", 0, "0"):
            return value
    return None


def to_utc(value: Any, *, unix: bool = False) -> datetime | None:
    """A platform time (Beijing wall-time text, or Unix seconds) as aware UTC."""
    if value in (None, "", 0, "0"):
        return None
    if unix or isinstance(value, int):
        return from_unix(value)
    return shanghai_to_utc(str(value))


__all__ = [
    "Answer",
    "BaseClient",
    "BreakerState",
    "CircuitBreaker",
    "LastGood",
    "Page",
    "PlatformRuntime",
    "TokenBucket",
    "beijing",
    "compact",
    "load_json",
    "needs_person",
    "option_secret",
    "runtime_for",
    "runtimes",
    "windows",
]
