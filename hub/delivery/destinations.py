"""Per-destination flow control, in memory per worker: a concurrency cap, a slow-down
when the receiver asks for one, and a circuit breaker.

closed ──(breaker_failures consecutive failures)──> open ──(cooldown)──> half-open
  ^                                                   ^                      │
  └────────────── probe succeeds ─────────────────────┴── probe fails ───────┘

While a breaker is open nothing is sent there, so the receiver's rows wait without
using up their attempts; in half-open one probe goes through, and a failed probe is
not held against its row either. That is how a receiver down for an hour still gets
everything afterwards while the dead-after-N rule holds for messages the receiver
itself keeps refusing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hub.delivery.config import DeliveryConfig


@dataclass
class Destination:
    key: str
    cap: int
    limit: int  # current allowed concurrency: drops to 1 on slow-down, climbs back on success
    inflight: int = 0
    failures: int = 0  # consecutive
    open_until: float | None = None
    paused_until: float = 0.0

    def state(self, now: float) -> str:
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until else "half-open"

    def room(self, now: float) -> int:
        if now < self.paused_until:
            return 0
        state = self.state(now)
        if state == "open":
            return 0
        if state == "half-open":
            return max(0, 1 - self.inflight)
        return max(0, self.limit - self.inflight)


@dataclass
class Destinations:
    config: DeliveryConfig
    clock: object = field(default=time.monotonic)
    _all: dict[str, Destination] = field(default_factory=dict)

    def now(self) -> float:
        return self.clock()  # type: ignore[operator]

    def get(self, key: str) -> Destination:
        dest = self._all.get(key)
        if dest is None:
            cap = self.config.per_destination
            dest = self._all[key] = Destination(key, cap=cap, limit=cap)
        return dest

    def capacity(self) -> dict[str, int]:
        """Room per known destination (unknown ones have the full cap)."""
        now = self.now()
        return {key: dest.room(now) for key, dest in self._all.items()}

    def is_probe(self, key: str) -> bool:
        return self.get(key).state(self.now()) == "half-open"

    def started(self, key: str) -> None:
        self.get(key).inflight += 1

    def finished(self, key: str) -> None:
        dest = self.get(key)
        dest.inflight = max(0, dest.inflight - 1)

    def succeeded(self, key: str) -> None:
        dest = self.get(key)
        dest.failures = 0
        dest.open_until = None
        dest.limit = min(dest.cap, dest.limit + 1)

    def failed(self, key: str) -> bool:
        """A failure that says the receiver is unwell; True when this opened the breaker."""
        dest = self.get(key)
        now = self.now()
        dest.failures += 1
        if dest.state(now) == "half-open":
            dest.open_until = now + self.config.breaker_cooldown
            return False
        if dest.open_until is None and dest.failures >= self.config.breaker_failures:
            dest.open_until = now + self.config.breaker_cooldown
            return True
        return False

    def slow_down(self, key: str, seconds: float) -> None:
        """The receiver asked for less (429/502/503/504, Retry-After): pause, then one by one."""
        dest = self.get(key)
        dest.paused_until = max(dest.paused_until, self.now() + seconds)
        dest.limit = 1

    def snapshot(self) -> dict[str, dict[str, object]]:
        now = self.now()
        return {
            key: {
                "state": d.state(now),
                "inflight": d.inflight,
                "limit": d.limit,
                "failures": d.failures,
                "paused_for": max(0.0, d.paused_until - now),
            }
            for key, d in self._all.items()
        }
