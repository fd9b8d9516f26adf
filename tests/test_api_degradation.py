"""Degradation of platform API calls: token bucket, circuit breaker (open, half-open,
close), last-good answers for reads while open, fail-fast writes, and /metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

import connectors
from connectors import apiclient
from connectors.apiclient import BreakerState, CircuitBreaker, TokenBucket
from connectors.base import AuthExpired, PlatformBusy
from hub.runtime import Hub
from hub.settings import Shop
from sandbox.fakes.platform_api import FakeOrder, FakePlatformApi
from tests.platform_fake import fake_api, fake_shop

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_paces() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_acquire() == pytest.approx(0.5)  # next token in 1/rate s
    clock.now += 0.5
    assert bucket.try_acquire() == 0.0
    clock.now += 100  # idle time refills only up to the burst
    assert [bucket.try_acquire() for _ in range(4)][-1] > 0


def test_token_bucket_pause_holds_back_calls() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10.0, burst=10, clock=clock)
    bucket.pause(3.0)  # the platform said: banned for 3 s
    assert bucket.try_acquire() == pytest.approx(3.1)
    clock.now += 3.1
    assert bucket.try_acquire() == 0.0


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, reset_seconds=30, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure("http_502")
    assert breaker.state is BreakerState.CLOSED
    breaker.failure("timeout")
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now += 30
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # one trial call
    assert not breaker.allow()  # and only one at a time
    breaker.failure("timeout")  # the trial failed: open again for a full period
    assert breaker.state is BreakerState.OPEN
    clock.now += 29
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()
    breaker.success()
    assert breaker.state is BreakerState.CLOSED and breaker.failures == 0


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(threshold=3, reset_seconds=30, clock=Clock())
    breaker.failure("x")
    breaker.failure("x")
    breaker.success()
    breaker.failure("x")
    breaker.failure("x")
    assert breaker.state is BreakerState.CLOSED


fake = pytest.fixture(name="fake")(fake_api)


def jd_shop(url: str) -> Shop:
    return fake_shop("jd", url, api_breaker_failures=3, api_breaker_reset_seconds=60)


async def test_open_breaker_serves_reads_from_last_good_and_fails_writes_fast(
    fake: tuple[FakePlatformApi, str],
) -> None:
    api, url = fake
    now = datetime.now(UTC).replace(microsecond=0)
    api.add_order(
        FakeOrder(
            "jd",
            "300001",
            "paid",
            now - timedelta(minutes=5),
            paid=now - timedelta(minutes=4),
            updated=now - timedelta(minutes=4),
        )
    )
    client = connectors.api_client(jd_shop(url), transport=httpx.AsyncHTTPTransport())
    window = (now - timedelta(minutes=10), now)
    first = [p async for p in client.changed_pages(*window)]
    assert not first[0].stale and len(first[0].events) == 2

    api.fail(3, "http_503")
    for _ in range(3):
        with pytest.raises(PlatformBusy):
            await client.ship("300001", "2100", "JD1")
    assert client.runtime.breaker.state is BreakerState.OPEN
    calls_before = len(api.calls)

    # a write fails fast, without touching the platform, so the outbox keeps it
    with pytest.raises(PlatformBusy) as caught:
        await client.ship("300001", "2100", "JD1")
    assert caught.value.code == "circuit_open" and caught.value.retryable
    # a read of the same window is answered from the last good answer, marked stale
    again = [p async for p in client.changed_pages(*window)]
    assert again[0].stale and again[0].raw == first[0].raw
    # a read never answered before has nothing to fall back on
    with pytest.raises(PlatformBusy):
        [p async for p in client.changed_pages(now - timedelta(hours=5), now - timedelta(hours=4))]
    assert len(api.calls) == calls_before

    # after the reset period one trial goes out; its success closes the circuit
    client.runtime.breaker.opened_at = client.runtime.breaker.opened_at - 60  # type: ignore[operator]
    assert (await client.ship("300001", "2100", "JD1")).ok
    assert client.runtime.breaker.state is BreakerState.CLOSED
    assert len(api.calls) == calls_before + 1
    await client.aclose()


async def test_platform_error_answers_do_not_open_the_breaker(
    fake: tuple[FakePlatformApi, str],
) -> None:
    api, url = fake
    api.fail(5, "auth_expired")  # the platform is up; our token is not
    client = connectors.api_client(jd_shop(url), transport=httpx.AsyncHTTPTransport())
    for _ in range(5):
        with pytest.raises(Exception) as caught:
            await client.ship("1", "2100", "x")
        assert not isinstance(caught.value, PlatformBusy)
    assert client.runtime.breaker.state is BreakerState.CLOSED
    await client.aclose()


async def test_breaker_state_is_in_metrics(
    fake: tuple[FakePlatformApi, str], hub: Hub, client: httpx.AsyncClient, admin_token: str
) -> None:
    api, url = fake
    api.fail(3, "http_500")
    jd = connectors.api_client(jd_shop(url), transport=httpx.AsyncHTTPTransport())
    for _ in range(3):
        with pytest.raises(PlatformBusy):
            await jd.ship("1", "2100", "x")
    assert jd.runtime in apiclient.runtimes()
    text = (await client.get("/metrics", headers={"authorization": f"Bearer {admin_token}"})).text
    assert 'orderhook_api_breaker_state{platform="jd"} 2.0' in text
    assert 'orderhook_api_calls_total{outcome="PlatformBusy",platform="jd"} 3.0' in text
    await jd.aclose()


async def test_half_open_trial_without_verdict_does_not_shut_the_circuit(
    fake: tuple[FakePlatformApi, str],
) -> None:
    api, url = fake
    api.fail(3, "http_500")
    shop = jd_shop(url)
    client = connectors.api_client(shop, transport=httpx.AsyncHTTPTransport())
    for _ in range(3):
        with pytest.raises(PlatformBusy):
            await client.ship("1", "2100", "x")
    breaker = client.runtime.breaker
    breaker.opened_at = breaker.opened_at - 60  # type: ignore[operator]
    # the trial dies before any answer: the token is an unset environment variable
    shop.options["access_token"] = "env:ORDERHOOK_TEST_UNSET_TOKEN"
    with pytest.raises(AuthExpired):
        await client.ship("1", "2100", "x")
    assert breaker.state is BreakerState.HALF_OPEN and breaker.allow()  # next trial may go
    await client.aclose()
