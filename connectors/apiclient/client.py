"""The shared call path every platform client subclasses (`BaseClient`: breaker,
bucket, cache, typed errors, paging) and `needs_person`, which says which of those
errors only a person can fix."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import httpx

from connectors.apiclient.answers import Answer, LastGood, Page
from connectors.apiclient.formats import compact, load_json
from connectors.apiclient.options import limits_from, require_token, seller_token
from connectors.apiclient.runtime import PlatformRuntime, register, runtime_for
from connectors.base import (
    ApiError,
    InvalidParameter,
    PlatformBusy,
    RateLimited,
    SendResult,
)
from hub.model import OrderEvent, utcnow

if TYPE_CHECKING:
    from hub.settings import Shop

log = logging.getLogger("orderhook.api")


def needs_person(error: ApiError) -> bool:
    """Will this error come back on every retry until a person changes the shop's
    config (a missing or expired token, a refused signature or app key, a call the app
    may not make)? The error classes say it: only RateLimited and PlatformBusy are
    worth retrying as they are."""
    return not error.retryable


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
    # shop options that may hold the seller's token, the first one set wins
    token_options: ClassVar[tuple[str, ...]] = ("access_token",)
    # API methods a platform source says need the seller's token: without one configured
    # they fail `missing_token` before anything is sent (docs/connectors/api-clients.md)
    token_methods: ClassVar[frozenset[str]] = frozenset()

    def token(self) -> str | None:
        """The seller's token from the shop's options (None when it sets none)."""
        return seller_token(self.shop, self.token_options)

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
        if method in self.token_methods:
            # before the breaker, the bucket and the cache: a call the platform can only
            # refuse is not sent, does not count as traffic and is never served stale
            require_token(self.shop, self.token_options, f"{self.platform} {method}")
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
