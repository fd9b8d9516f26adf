"""Managing subscriptions (shared by the CLI and the admin API): validate, add, disable,
enable, rotate the secret. Functions here take a connection and raise ValueError (or
TargetRefused) with a message fit for a person."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import connectors
from hub.delivery import signing
from hub.delivery.config import DeliveryConfig
from hub.delivery.guard import check_url
from hub.model import Kind, iso_utc, utcnow
from hub.store import delivery_sql

KIND = "subscription"


@dataclass(frozen=True)
class NewSubscription:
    url: str
    name: str = ""
    kinds: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    shops: list[str] = field(default_factory=list)
    include_payload: bool = True
    secret: str | None = None

    def validate(self, config: DeliveryConfig) -> None:
        bad = sorted(set(self.kinds) - {k.value for k in Kind})
        if bad:
            raise ValueError(
                f"unknown event kind(s) {', '.join(bad)} "
                f"(known: {', '.join(k.value for k in Kind)})"
            )
        bad = sorted(set(self.platforms) - set(connectors.names()))
        if bad:
            raise ValueError(
                f"unknown platform(s) {', '.join(bad)} (known: {', '.join(connectors.names())})"
            )
        if self.secret is not None:
            signing.check_secret(self.secret)
        check_url(self.url, allow_private=config.allow_private)


def add(conn: sqlite3.Connection, new: NewSubscription) -> dict[str, Any]:
    """Create it (validate first: resolving the host must not hold the writer) and return
    it with its secret (the receiver needs it to verify)."""
    sub_id = delivery_sql.add_subscription(
        conn,
        name=new.name or new.url,
        url=new.url,
        secret=new.secret or signing.new_secret(),
        kinds=sorted(set(new.kinds)),
        platforms=sorted(set(new.platforms)),
        shops=sorted(set(new.shops)),
        include_payload=new.include_payload,
    )
    sub = delivery_sql.get_subscription(conn, sub_id)
    assert sub is not None
    return sub


def disable(conn: sqlite3.Connection, sub_id: int, reason: str = "disabled by hand") -> int:
    """Stop deliveries; waiting rows are parked (state disabled). Returns how many."""
    if not delivery_sql.set_subscription_disabled(conn, sub_id, reason):
        raise LookupError(f"no subscription {sub_id}")
    return delivery_sql.disable_lane_rows(conn, KIND, str(sub_id), reason)


def enable(conn: sqlite3.Connection, sub_id: int) -> int:
    """Resume deliveries; parked rows are queued again. Returns how many."""
    if not delivery_sql.set_subscription_disabled(conn, sub_id, None):
        raise LookupError(f"no subscription {sub_id}")
    return delivery_sql.requeue_disabled(conn, KIND, str(sub_id))


def rotate(
    conn: sqlite3.Connection, sub_id: int, grace_hours: float, secret: str | None = None
) -> dict[str, Any]:
    """New secret now; the old one still signs (second signature) for `grace_hours`."""
    if secret is not None:
        signing.check_secret(secret)
    until = iso_utc(utcnow() + timedelta(hours=grace_hours))
    if not delivery_sql.rotate_subscription_secret(
        conn, sub_id, secret or signing.new_secret(), until
    ):
        raise LookupError(f"no subscription {sub_id}")
    sub = delivery_sql.get_subscription(conn, sub_id)
    assert sub is not None
    return sub


def public(sub: dict[str, Any], *, with_secret: bool = False) -> dict[str, Any]:
    """A subscription as shown to people: secrets only when just made."""
    shown = {k: v for k, v in sub.items() if k not in ("secret", "old_secret")}
    shown["rotating_until"] = sub["old_secret_until"] if sub.get("old_secret") else None
    shown.pop("old_secret_until", None)
    if with_secret:
        shown["secret"] = sub["secret"]
    return shown
