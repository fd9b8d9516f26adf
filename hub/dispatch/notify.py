"""Notifications a dispatch decision sends: outbox rows (kind `notify`) written in the
decision's own transaction, one per channel the group names in the config. The delivery
stage sends them over WeCom, DingTalk, Feishu or email and retries."""

from __future__ import annotations

import sqlite3

from hub.dispatch.config import DispatchConfig
from hub.store import dispatch_sql
from hub.store.orders_sql import OrderKey
from hub.store.outbox_sql import enqueue


def send(
    conn: sqlite3.Connection,
    config: DispatchConfig,
    *,
    group: str,
    title: str,
    text: str,
    severity: str,
    dedupe: str,
    now: str,
    key: OrderKey | None = None,
    task_id: int | None = None,
    log_unsent: bool = True,
) -> int:
    """Queue the message for each of the group's channels; returns how many were queued."""
    channels = config.channels(group)
    queued = 0
    for channel in channels:
        row = enqueue(
            conn,
            kind="notify",
            target=channel,
            payload={"title": title, "text": text, "severity": severity},
            order_key=":".join(key) if key else None,
            dedupe_key=f"dispatch:{dedupe}:{channel}",
        )
        queued += row is not None
    if queued or (not channels and log_unsent):
        dispatch_sql.log(
            conn,
            "notified",
            now,
            key=key,
            task_id=task_id,
            group=group,
            detail=f"{title} -> {', '.join(channels)}"
            if channels
            else f"{title}: no channel configured for group {group} (nobody notified)",
        )
    return queued
