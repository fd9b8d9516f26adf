"""Writing to the outbox: call `enqueue` inside the transaction that makes the decision
(`store.write(fn)` where fn calls enqueue), so the decision and its message are durable
together or not at all. Delivery lives in the delivery stage."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from hub.model import iso_utc, utcnow

KINDS = ("subscription", "notify", "platform_call")


def enqueue(
    conn: sqlite3.Connection,
    *,
    kind: str,
    target: str,
    payload: dict[str, Any],
    order_key: str | None = None,
    dedupe_key: str | None = None,
    not_before: datetime | None = None,
) -> int | None:
    """Queue one outgoing message; returns its id, or None when `dedupe_key` was queued before."""
    if kind not in KINDS:
        raise ValueError(f"outbox kind must be one of {KINDS}")
    now = iso_utc(utcnow())
    cur = conn.execute(
        "INSERT OR IGNORE INTO outbox (kind, target, order_key, payload, dedupe_key, "
        "next_attempt_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
        (
            kind,
            target,
            order_key,
            json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str),
            dedupe_key,
            iso_utc(not_before) if not_before else now,
            now,
            now,
        ),
    )
    return int(cur.lastrowid) if cur.rowcount == 1 and cur.lastrowid else None
