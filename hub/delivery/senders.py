"""One sender per outbox kind: make the call, say what happened. No database writes here
(the worker settles the row in one transaction afterwards); sends happen outside any
transaction.

- subscription: a Standard Webhooks-signed POST to the subscriber's URL (SSRF-guarded,
  redirects not followed, response body kept as an excerpt);
- notify: `hub.notify.deliver(hub, channel, payload, http)` (the channels' wire formats
  live there);
- platform_call: the shop's API client from `connectors.api_client(shop)`, e.g. `ship`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import httpx

from connectors.base import ApiError, RateLimited, SendResult
from hub import notify
from hub.delivery import signing
from hub.delivery.backoff import retry_after
from hub.delivery.guard import TargetRefused, refusal_in
from hub.store import delivery_sql

if TYPE_CHECKING:
    from hub.delivery.worker import Worker

CLIENT_BREAKER_OPEN = "circuit_open"  # connectors.apiclient: write refused while open
SLOW_DOWN = {429, 502, 503, 504}  # Standard Webhooks: throttle on 429, 502 and 504 (and 503)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    retryable: bool = True
    status: int | None = None
    code: str | None = None
    detail: str = ""
    retry_after: float | None = None
    request: dict[str, Any] = field(default_factory=dict)
    response_body: str | None = None
    gone: bool = False  # 410: the receiver wants no more (the endpoint is disabled)
    unwell: bool = False  # transport error, timeout, 5xx: counts towards the breaker
    slow_down: bool = False  # the receiver asked for less traffic
    sent: bool = True  # False: refused before leaving (a client's own open breaker)


def from_result(result: SendResult, request: dict[str, Any]) -> Outcome:
    """A SendResult from a notification channel or platform client, as an Outcome."""
    throttled = result.status == 429 or result.retry_after is not None
    return Outcome(
        ok=result.ok,
        retryable=result.retryable,
        status=result.status,
        code=result.code,
        detail=result.detail,
        retry_after=result.retry_after,
        request=request,
        unwell=not result.ok
        and result.retryable
        and (result.status is None or result.status >= 500),
        slow_down=not result.ok and throttled,
    )


def excerpt(data: bytes, limit: int) -> str:
    return data[:limit].decode("utf-8", errors="replace")


async def send_subscription(worker: Worker, row: dict[str, Any]) -> Outcome:
    sub = await worker.hub.store.read(delivery_sql.get_subscription, int(row["target"]))
    if sub is None:
        return Outcome(
            False, retryable=False, code="no_subscription", detail="subscription deleted"
        )
    if sub["disabled_at"]:
        return Outcome(False, gone=True, code="disabled", detail=sub["disabled_reason"] or "")
    body = row["payload"]  # the stored JSON text, byte for byte what gets signed
    headers = {
        **signing.headers(f"msg_{row['id']}", body, signing.signing_secrets(sub)),
        "content-type": "application/json",
        "user-agent": "orderhook",
    }
    limit = worker.config.excerpt_bytes
    request = {
        "method": "POST",
        "url": sub["url"],
        "headers": headers,
        "body": body[:limit],
    }
    try:
        async with worker.subscriber_http.stream(
            "POST", sub["url"], content=body.encode(), headers=headers
        ) as response:
            kept = bytearray()
            async for chunk in response.aiter_bytes():
                kept += chunk
                if len(kept) >= limit:
                    break
    except TargetRefused as exc:
        return Outcome(
            False, retryable=False, code="ssrf_refused", detail=str(exc), request=request
        )
    except httpx.TimeoutException as exc:
        return Outcome(False, detail=f"timeout: {type(exc).__name__}", request=request, unwell=True)
    except httpx.HTTPError as exc:
        refused = refusal_in(exc)
        if refused is not None:
            return Outcome(
                False, retryable=False, code="ssrf_refused", detail=str(refused), request=request
            )
        return Outcome(False, detail=f"{type(exc).__name__}: {exc}", request=request, unwell=True)
    status = response.status_code
    base = Outcome(
        ok=200 <= status < 300,
        status=status,
        request=request,
        response_body=excerpt(bytes(kept), limit),
    )
    if base.ok:
        return base
    if status == 410:
        return replace(base, gone=True, detail="410 Gone: the receiver asked for no more")
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        return replace(
            base,
            detail=f"{status} redirect to {where}: redirects are not "
            "followed, update the subscription URL",
        )
    return replace(
        base,
        detail=f"HTTP {status}",
        retry_after=retry_after(response.headers.get("retry-after")),
        unwell=status >= 500,
        slow_down=status in SLOW_DOWN,
    )


async def send_notify(worker: Worker, row: dict[str, Any]) -> Outcome:
    result = await notify.deliver(
        worker.hub, row["target"], json.loads(row["payload"]), worker.notify_http
    )
    return from_result(result, {"channel": row["target"]})


async def send_platform_call(worker: Worker, row: dict[str, Any]) -> Outcome:
    payload = json.loads(row["payload"])
    request = {"target": row["target"], **payload}
    platform, _, shop_name = row["target"].partition(":")
    shop = worker.hub.settings.shop(shop_name)
    if shop is None or shop.platform != platform:
        return Outcome(
            False,
            retryable=False,
            code="unknown_shop",
            detail=f"no shop {row['target']}",
            request=request,
        )
    call = payload.get("call")
    if call != "ship":
        return Outcome(
            False, retryable=False, code="unknown_call", detail=f"no call {call!r}", request=request
        )
    try:
        client = worker.api_client(row["target"], shop)
    except LookupError as exc:
        return Outcome(
            False, retryable=False, code="no_api_client", detail=str(exc), request=request
        )
    try:
        result = await client.ship(payload["order_id"], payload["carrier"], payload["tracking_no"])
    except ApiError as exc:
        if exc.code == CLIENT_BREAKER_OPEN:
            # the API client's breaker held the call back: nothing reached the platform,
            # so it is not held against the row (else an outage would kill the queue)
            return Outcome(False, code=exc.code, detail=exc.message, request=request, sent=False)
        wait = exc.retry_after if isinstance(exc, RateLimited) else None
        return Outcome(
            False,
            retryable=exc.retryable,
            code=exc.code,
            detail=exc.message,
            retry_after=wait,
            request=request,
            unwell=exc.retryable and not isinstance(exc, RateLimited),
            slow_down=isinstance(exc, RateLimited),
        )
    except httpx.HTTPError as exc:
        return Outcome(False, detail=f"{type(exc).__name__}: {exc}", request=request, unwell=True)
    return from_result(result, request)


SENDERS = {
    "subscription": send_subscription,
    "notify": send_notify,
    "platform_call": send_platform_call,
}
