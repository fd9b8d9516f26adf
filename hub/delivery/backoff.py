"""When to try again: exponential backoff with jitter, and the receiver's Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from hub.delivery.config import DeliveryConfig


def delay(config: DeliveryConfig, failures: int, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after `failures` failed ones (1 = the first failed).

    base * factor^(failures-1), capped, then cut by a random share of up to `jitter` so
    that rows which failed together (a receiver outage) do not all come back together."""
    exponent = max(failures - 1, 0)
    raw = min(config.backoff_base * config.backoff_factor**exponent, config.backoff_max)
    cut = (rng or random).uniform(0.0, config.jitter) if config.jitter else 0.0
    return raw * (1.0 - cut)


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """RFC 9110 Retry-After: delay-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
