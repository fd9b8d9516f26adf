"""The `[delivery]` section: retry schedule, leases, caps, breaker, SSRF switch.

[delivery]
max_attempts = 3            # failed attempts before a row is dead (the merchants' rule)
backoff_base = 30.0         # seconds before the 2nd attempt; doubles each time ...
backoff_factor = 2.0
backoff_max = 3600.0        # ... up to this
jitter = 0.25               # each delay is cut by a random 0..25 % (spreads retries)
timeout = 15.0              # per request, seconds (Standard Webhooks: 15-30 s)
lease_seconds = 60.0        # a claimed row returns to the queue if not settled by then
poll_interval = 0.2         # how often the worker looks for due rows
concurrency = 32            # sends in flight, all destinations together
per_destination = 4         # sends in flight to one destination
breaker_failures = 5        # consecutive failures that open a destination's breaker
breaker_cooldown = 30.0     # seconds before an open breaker lets one probe through
slowdown = 10.0             # pause after 429/502/503/504 without Retry-After
retry_after_max = 3600.0    # a Retry-After longer than this is capped
excerpt_bytes = 2048        # response body kept with each attempt
allow_private = false       # allow loopback/private/link-local subscription targets
rotation_grace_hours = 24.0 # old subscription secret still signed for this long
shipment_users = []         # user names allowed to report shipments whatever their role
alert_interval = 300.0      # at most one dead/paused alert per destination this often
keep_done_days = 30         # delivered rows (and their attempts) are pruned after this
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class DeliveryConfig:
    max_attempts: int = 3
    backoff_base: float = 30.0
    backoff_factor: float = 2.0
    backoff_max: float = 3600.0
    jitter: float = 0.25
    timeout: float = 15.0
    lease_seconds: float = 60.0
    poll_interval: float = 0.2
    concurrency: int = 32
    per_destination: int = 4
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0
    slowdown: float = 10.0
    retry_after_max: float = 3600.0
    excerpt_bytes: int = 2048
    allow_private: bool = False
    rotation_grace_hours: float = 24.0
    shipment_users: tuple[str, ...] = field(default=())
    alert_interval: float = 300.0
    keep_done_days: int = 30


# (low, high) bounds per numeric key; a typo'd schedule should fail at start, not at 2 a.m.
BOUNDS: dict[str, tuple[float, float]] = {
    "max_attempts": (1, 100),
    "backoff_base": (0.0, 86400.0),
    "backoff_factor": (1.0, 100.0),
    "backoff_max": (0.0, 7 * 86400.0),
    "jitter": (0.0, 1.0),
    "timeout": (0.01, 600.0),
    "lease_seconds": (0.05, 86400.0),
    "poll_interval": (0.01, 60.0),
    "concurrency": (1, 10000),
    "per_destination": (1, 1000),
    "breaker_failures": (1, 10000),
    "breaker_cooldown": (0.0, 86400.0),
    "slowdown": (0.0, 86400.0),
    "retry_after_max": (0.0, 7 * 86400.0),
    "excerpt_bytes": (0, 1 << 20),
    "rotation_grace_hours": (0.0, 24 * 90.0),
    "alert_interval": (0.0, 86400.0),
    "keep_done_days": (1, 3650),
}


def parse(table: dict[str, Any], fail: Any) -> DeliveryConfig:
    """Validate `[delivery]` (registered in hub.settings.SECTIONS)."""
    known = {f.name: f for f in fields(DeliveryConfig)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise fail(
                f"delivery.{key}: unknown setting (known: {', '.join(sorted(known))})",
                "delivery",
                key,
            )
        default = getattr(DeliveryConfig, key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise fail(f"delivery.{key}: must be true or false", "delivery", key)
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise fail(f"delivery.{key}: must be a list of names", "delivery", key)
            value = tuple(value)
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise fail(f"delivery.{key}: {value!r} is not a number", "delivery", key)
            if isinstance(default, int) and not isinstance(value, int):
                raise fail(f"delivery.{key}: {value!r} is not a whole number", "delivery", key)
            low, high = BOUNDS[key]
            if not low <= value <= high:
                raise fail(
                    f"delivery.{key}: {value!r} is outside {low:g}..{high:g}", "delivery", key
                )
            value = type(default)(value)
        values[key] = value
    config = DeliveryConfig(**values)
    if config.lease_seconds <= config.timeout:
        raise fail(
            f"delivery.lease_seconds ({config.lease_seconds:g}) must exceed delivery.timeout "
            f"({config.timeout:g}): a lease that ends mid-request sends the row twice",
            "delivery",
            "lease_seconds",
        )
    return config


def of(settings: Any) -> DeliveryConfig:
    """The parsed `[delivery]` section of a Settings (defaults when absent)."""
    config = settings.sections.get("delivery")
    return config if isinstance(config, DeliveryConfig) else DeliveryConfig()
