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

Which module holds what:

    limits.py      TokenBucket, BreakerState, CircuitBreaker
    runtime.py     PlatformRuntime, Stats and the per-loop registry (runtime_for,
                   runtimes, current_runtimes, loop_runtimes, aclose_loop, register)
    options.py     a shop's API options: limits_from, positive, check_options,
                   option_secret, seller_token, require_token
    answers.py     Answer, Page, LastGood
    client.py      BaseClient (the call path) and needs_person
    formats.py     wire-format helpers: beijing, load_json, compact, param_text,
                   windows, first_of, to_utc
    shipping.py    carrier_code, ship_result
    milestones.py  Milestone, milestone_events

Import from the package (`from connectors.apiclient import BaseClient`); a test that
replaces a function must patch it in the module that calls it (e.g.
`connectors.apiclient.client.runtime_for`), not here.
"""

from __future__ import annotations

from connectors.apiclient.answers import Answer, LastGood, Page
from connectors.apiclient.client import BaseClient, needs_person
from connectors.apiclient.formats import (
    beijing,
    compact,
    first_of,
    load_json,
    param_text,
    to_utc,
    windows,
)
from connectors.apiclient.limits import BreakerState, CircuitBreaker, TokenBucket
from connectors.apiclient.milestones import Milestone, milestone_events
from connectors.apiclient.options import (
    LIMIT_OPTIONS,
    check_options,
    limits_from,
    option_secret,
    positive,
    require_token,
    seller_token,
)
from connectors.apiclient.runtime import (
    DEFAULT_TIMEOUT,
    PlatformRuntime,
    Stats,
    aclose_loop,
    current_runtimes,
    loop_runtimes,
    register,
    runtime_for,
    runtimes,
)
from connectors.apiclient.shipping import carrier_code, ship_result

__all__ = [
    "DEFAULT_TIMEOUT",
    "LIMIT_OPTIONS",
    "Answer",
    "BaseClient",
    "BreakerState",
    "CircuitBreaker",
    "LastGood",
    "Milestone",
    "Page",
    "PlatformRuntime",
    "Stats",
    "TokenBucket",
    "aclose_loop",
    "beijing",
    "carrier_code",
    "check_options",
    "compact",
    "current_runtimes",
    "first_of",
    "limits_from",
    "load_json",
    "loop_runtimes",
    "milestone_events",
    "needs_person",
    "option_secret",
    "param_text",
    "positive",
    "register",
    "require_token",
    "runtime_for",
    "runtimes",
    "seller_token",
    "ship_result",
    "to_utc",
    "windows",
]
