"""How fast and whether a call may go out: the token bucket (rate limit) and the
circuit breaker of one platform."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import IntEnum

log = logging.getLogger("orderhook.api")


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
