"""The outbox worker: claim due rows with a lease, send outside any transaction, settle.

    claim (writer txn) ──> send (no txn) ──> settle (writer txn: attempt + new state)
          │                                        │
          └─ lease_until ── sweeper takes back ────┘ rows whose worker died mid-way

The database is the only source of truth: a crash after the commit that queued a row
and before its send, or during the send, or before the settle, leaves the row either
pending or leased; a leased row goes back to pending when its lease expires. So a row
is sent at least once, and a receiver dedupes on `webhook-id` (stable per row).
A settle from a worker that lost its lease (it stalled past lease_until and the row
was re-claimed) is kept as evidence but changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx

import connectors
from connectors.base import ApiClient
from hub import notify
from hub.delivery import alerts, config, signals
from hub.delivery.backoff import delay
from hub.delivery.destinations import Destinations
from hub.delivery.guard import guarded_transport
from hub.delivery.senders import SENDERS, Outcome
from hub.model import iso_utc, utcnow
from hub.store import delivery_sql

if TYPE_CHECKING:
    from hub.runtime import Hub
    from hub.settings import Shop

log = logging.getLogger("orderhook.delivery")

SHIPMENT_STATE = {"done": "done", "dead": "failed", "retry": "retrying", "disabled": "failed"}


@dataclass(frozen=True)
class Decision:
    state: str  # done | retry | dead | disabled
    counted: bool
    next_in: float | None = None  # seconds, for retry


def decide(
    cfg: config.DeliveryConfig, outcome: Outcome, failed_before: int, probe: bool
) -> Decision:
    """What an attempt's outcome means for its row (pure: the unit tests' seam)."""
    if outcome.ok:
        return Decision("done", counted=False)
    if outcome.gone:
        return Decision("disabled", counted=True)
    if not outcome.sent:
        return Decision("retry", counted=False, next_in=cfg.breaker_cooldown)
    # a failed breaker probe says the receiver is still down, not that this row is bad
    counted = not probe
    failures = failed_before + int(counted)
    if not outcome.retryable or (counted and failures >= cfg.max_attempts):
        return Decision("dead", counted=counted)
    wait = 0.0 if probe else delay(cfg, failures)
    if outcome.retry_after is not None:
        wait = max(wait, min(outcome.retry_after, cfg.retry_after_max))
    return Decision("retry", counted=counted, next_in=wait)


class Worker:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        start = config.of(hub.settings)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.destinations = Destinations(start)
        self.tasks: set[asyncio.Task[None]] = set()
        # the HTTP clients keep the settings they start with (allow_private, pool size);
        # everything else follows a reloaded config at once
        limits = httpx.Limits(max_connections=start.concurrency, max_keepalive_connections=32)
        timeout = httpx.Timeout(start.timeout)
        self.subscriber_http = httpx.AsyncClient(
            transport=guarded_transport(allow_private=start.allow_private, limits=limits),
            timeout=timeout,
            follow_redirects=False,
        )
        self.notify_http = httpx.AsyncClient(timeout=timeout, limits=limits)
        self._api_clients: dict[str, tuple[Shop, ApiClient]] = {}
        self._alerted: dict[str, tuple[float, int]] = {}
        self._next_sweep = 0.0

    @property
    def config(self) -> config.DeliveryConfig:
        """The live `[delivery]` section (a reloaded config applies to the next send)."""
        current = config.of(self.hub.settings)
        self.destinations.config = current
        return current

    def budget(self, kind: str) -> float:
        """How long one send may take: a notification may first wait for its channel's
        rate-limit token (hub.notify.MAX_WAIT), then send."""
        # +1 s: the HTTP client's own timeout fires first and its error keeps the request
        # as evidence; this guard is for what no socket timeout catches (a dripping body)
        return self.config.timeout + 1.0 + (notify.MAX_WAIT if kind == "notify" else 0.0)

    def lease_seconds(self, kind: str) -> float:
        # the lease must outlive the send, or a slow send is sent twice
        return max(self.config.lease_seconds, self.budget(kind) + 5.0)

    def api_client(self, target: str, shop: Shop) -> ApiClient:
        cached = self._api_clients.get(target)
        if cached is not None and cached[0] is shop:
            return cached[1]
        # first use, or the config was reloaded: the shop may point somewhere else now
        # (the old client's pool is the platform's shared one, nothing to close)
        client = connectors.api_client(shop)
        self._api_clients[target] = (shop, client)
        return client

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        wake = signals.outbox_changed(self.hub)
        try:
            while True:
                await self.housekeeping()
                wake.clear()
                if not await self.claim_once():
                    await signals.wait(wake, self.config.poll_interval)
        finally:
            await self.close()

    async def housekeeping(self) -> None:
        """Sweep expired leases and refresh the backlog gauge (hub.retention prunes)."""
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + max(self.config.lease_seconds / 4, self.config.poll_interval)
            swept = await self.hub.store.write(delivery_sql.sweep, iso_utc(utcnow()))
            if swept:
                log.warning("took back %d expired outbox lease(s)", swept)
            counts = await self.hub.store.read(delivery_sql.state_counts)
            for state in delivery_sql.STATES:
                self.hub.metrics.outbox_rows.labels(state).set(counts.get(state, 0))

    def _may_alert(self, key: str) -> int | None:
        """None while an alert about this destination went out within alert_interval
        (a receiver that is down must not bury ops in one alert per message); else how
        many were held back since the last one."""
        now = time.monotonic()
        last, held = self._alerted.get(key, (-math.inf, 0))
        if now - last < self.config.alert_interval:
            self._alerted[key] = (last, held + 1)
            return None
        self._alerted[key] = (now, 0)
        return held

    async def claim_once(self) -> int:
        slots = self.config.concurrency - len(self.tasks)
        if slots <= 0:
            return 0
        now = utcnow()
        if not await self.hub.store.read(delivery_sql.has_due, iso_utc(now)):
            return 0
        capacity = self.destinations.capacity()
        rows = await self.hub.store.write(
            lambda conn: delivery_sql.claim(
                conn,
                now=iso_utc(now),
                lease_until={
                    kind: iso_utc(now + timedelta(seconds=self.lease_seconds(kind)))
                    for kind in SENDERS
                },
                owner=self.owner,
                capacity=capacity,
                default_capacity=self.config.per_destination,
                limit=slots,
            )
        )
        for row in rows:
            key = delivery_sql.destination(row["kind"], row["target"])
            probe = self.destinations.is_probe(key)
            self.destinations.started(key)
            task = asyncio.create_task(self.deliver(row, key, probe), name=f"outbox-{row['id']}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return len(rows)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        # hand our leases back now rather than making the next start wait them out
        with contextlib.suppress(Exception):
            await self.hub.store.write(delivery_sql.release, self.owner)
        for _shop, client in self._api_clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        await self.subscriber_http.aclose()
        await self.notify_http.aclose()

    # --- one row ----------------------------------------------------------------------------

    async def deliver(self, row: dict[str, Any], key: str, probe: bool) -> None:
        started = utcnow()
        t0 = time.perf_counter()
        try:
            try:
                # the whole send, not just each socket read: it must end inside the lease
                async with asyncio.timeout(self.budget(row["kind"])):
                    outcome = await SENDERS[row["kind"]](self, row)
            except TimeoutError:
                outcome = Outcome(
                    False,
                    detail=f"timeout: no answer within {self.budget(row['kind']):g} s",
                    request={"target": row["target"]},
                    unwell=True,
                )
            except Exception as exc:  # a sender bug must not strand the row
                log.exception("outbox row %s: sender failed", row["id"])
                outcome = Outcome(
                    False,
                    detail=f"{type(exc).__name__}: {exc}",
                    request={"target": row["target"]},
                    unwell=True,
                )
        finally:
            self.destinations.finished(key)
        seconds = time.perf_counter() - t0
        opened = self._flow_control(key, outcome)
        decision = decide(self.config, outcome, int(row["attempts"]), probe)
        attempt = delivery_sql.Attempt(
            outbox_id=row["id"],
            started_at=iso_utc(started),
            duration_ms=round(seconds * 1000.0, 3),
            request=outcome.request,
            response_status=outcome.status,
            response_body=outcome.response_body,
            code=outcome.code,
            error=None if outcome.ok else (outcome.detail or None),
            outcome=decision.state,
            counted=decision.counted,
        )
        alerting = (decision.state == "disabled" and outcome.gone and outcome.status == 410) or (
            decision.state == "dead" and row["kind"] != "notify"
        )
        held = self._may_alert(key) if alerting else None
        applied = await self.hub.store.write(self._settle, row, attempt, decision, outcome, held)
        # room at this destination, and maybe the next row of this lane: look again now
        signals.outbox_changed(self.hub).set()
        metrics = self.hub.metrics
        metrics.outbox_attempts.labels(
            row["kind"], decision.state if applied else "lost_lease"
        ).inc()
        metrics.outbox_send_seconds.labels(row["kind"]).observe(seconds)
        # a dead notification raises no alert: the alert would go out through the very
        # channels that are failing, and could loop
        if opened and row["kind"] != "notify" and self._may_alert(key) is not None:
            await self.hub.store.write(
                alerts.raise_alert,
                self.hub.settings,
                f"Delivery paused: {key}",
                f"{self.config.breaker_failures} consecutive failures ({outcome.detail}); "
                f"its messages wait and are retried every {self.config.breaker_cooldown:g} s.",
                "warning",
            )

    def _flow_control(self, key: str, outcome: Outcome) -> bool:
        if outcome.ok:
            self.destinations.succeeded(key)
            return False
        if outcome.slow_down:
            wait = outcome.retry_after if outcome.retry_after is not None else self.config.slowdown
            self.destinations.slow_down(key, min(wait, self.config.retry_after_max))
        return outcome.unwell and self.destinations.failed(key)

    def _settle(
        self,
        conn: Any,
        row: dict[str, Any],
        attempt: delivery_sql.Attempt,
        decision: Decision,
        outcome: Outcome,
        held: int | None,
    ) -> bool:
        outbox_id = row["id"]
        if not delivery_sql.holds_lease(conn, outbox_id, self.owner):
            delivery_sql.add_attempt(conn, replace(attempt, outcome="lost_lease"))
            return False
        delivery_sql.add_attempt(conn, attempt)
        next_at = (
            iso_utc(utcnow() + timedelta(seconds=decision.next_in))
            if decision.next_in is not None
            else None
        )
        delivery_sql.settle(
            conn,
            outbox_id,
            state="pending" if decision.state == "retry" else decision.state,
            counted=decision.counted,
            next_attempt_at=next_at,
            error=attempt.error,
            status=outcome.status,
        )
        if row["kind"] == "platform_call":
            delivery_sql.update_shipment(
                conn,
                outbox_id,
                SHIPMENT_STATE[decision.state],
                None if outcome.ok else outcome.code,
                None if outcome.ok else outcome.detail,
            )
        what = f"outbox #{outbox_id} ({row['kind']} to {row['target']})"
        more = f" ({held} similar alert(s) held back before this one)" if held else ""
        if decision.state == "disabled" and row["kind"] == "subscription" and outcome.status == 410:
            reason = f"410 Gone from the receiver (outbox #{outbox_id})"
            delivery_sql.set_subscription_disabled(conn, int(row["target"]), reason)
            parked = delivery_sql.disable_lane_rows(conn, row["kind"], row["target"], reason)
            if held is not None:
                alerts.raise_alert(
                    conn,
                    self.hub.settings,
                    f"Subscription {row['target']} disabled",
                    f"{what} was answered 410 Gone; {parked} waiting message(s) parked. "
                    f"Re-enable with `orderhook subscriptions enable {row['target']}`.{more}",
                    "warning",
                )
        elif decision.state == "dead" and held is not None:
            alerts.raise_alert(
                conn,
                self.hub.settings,
                f"Delivery dead: {what}",
                f"Gave up after {row['attempts'] + int(decision.counted)} failed attempt(s): "
                f"{outcome.detail or outcome.code}. "
                f"Re-send with `orderhook outbox retry {outbox_id}`.{more}",
                "critical",
            )
        return True


async def run(hub: Hub) -> None:
    """The outbox worker stage (listed in hub.runtime.SERVICES)."""
    await Worker(hub).run()
