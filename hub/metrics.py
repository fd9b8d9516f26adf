"""Prometheus metrics, one registry per hub (tests run several hubs in one process)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from connectors import apiclient

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "orderhook_requests",
            "Inbound requests by platform, shop and outcome: accepted, duplicate, rejected, "
            "error, or shed (answered 503 unrecorded while overloaded; unknown shops are "
            "'_unknown')",
            ["platform", "shop", "outcome", "reason"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "orderhook_ack_seconds",
            "Time from receiving a push to sending its ack (includes the group commit)",
            ["platform"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "orderhook_writer_batch_size",
            "Requests committed together in one transaction of the ingest writer",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "orderhook_writer_batch_seconds",
            "Duration of one ingest writer transaction including its commit",
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "orderhook_writer_queue_depth",
            "Jobs waiting for a commit (ingest writer and writer thread)",
            registry=self.registry,
        )
        self.ingest_waited = Gauge(
            "orderhook_ingest_oldest_wait_seconds",
            "How long the oldest push waiting for its commit has waited (pushes are shed "
            "above hub.shed_after_ms)",
            registry=self.registry,
        )
        self.worker_up = Gauge(
            "orderhook_worker_up",
            "1 while the worker process (ingest writer, stage runner) is running",
            ["worker"],
            registry=self.registry,
        )
        self.worker_restarts = Gauge(
            "orderhook_worker_restarts",
            "Times the worker process was replaced after it died, since the hub started",
            ["worker"],
            registry=self.registry,
        )
        self.events_unknown = Counter(
            "orderhook_events_unmapped",
            "Events whose platform type maps to no canonical kind (kind 'other')",
            ["platform", "platform_type"],
            registry=self.registry,
        )
        self.dispatch_decisions = Counter(
            "orderhook_dispatch_decisions",
            "Dispatch decisions: routed, assigned, closed, escalated",
            ["decision"],
            registry=self.registry,
        )
        self.dispatch_waiting = Gauge(
            "orderhook_dispatch_waiting_tasks",
            "Open tasks nobody has claimed, per group and queue (group | supervisor)",
            ["group", "queue"],
            registry=self.registry,
        )
        self.dispatch_oldest = Gauge(
            "orderhook_dispatch_oldest_unclaimed_seconds",
            "Age of the oldest unclaimed task per group (0 when none waits)",
            ["group"],
            registry=self.registry,
        )

        self.forensics = Counter(
            "orderhook_signature_forensics",
            "Refused signatures that forensics explained, by what matched (hmac-sha256, "
            "upper-hex, peer_secret = another shop's secret, ...): a rise means a platform "
            "changed its algorithm or secrets got mixed up",
            ["platform", "match"],
            registry=self.registry,
        )
        self.notify_sends = Counter(
            "orderhook_notify_sends",
            "Notification deliveries by channel and outcome (ok, retry, failed)",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.notify_merged = Counter(
            "orderhook_notify_merged",
            "Notifications sent inside a digest because the channel's rate limit was reached",
            ["channel"],
            registry=self.registry,
        )
        self.reconcile_runs = Counter(
            "orderhook_reconcile_runs",
            "Reconciliation runs by outcome (ok, stale: served from the last-good cache, failed)",
            ["platform", "shop", "outcome"],
            registry=self.registry,
        )
        self.reconcile_events = Counter(
            "orderhook_reconcile_events",
            "Events reconciliation pulled: 'new' ones are changes the pushes had missed",
            ["platform", "shop", "result"],
            registry=self.registry,
        )
        self.reconcile_blocked = Gauge(
            "orderhook_reconcile_blocked",
            "1 while a shop's reconciliation waits for a person (missing or expired token, "
            "refused credentials), 0 once it pulled again; set by the shop's runs",
            ["platform", "shop"],
            registry=self.registry,
        )
        self.registry.register(ApiCollector())
        # message channels the hub holds open (Taobao TMC, Pinduoduo); one series per shop
        # even when several shops share one connection (hub/channels.py)
        self.channel_connected = Gauge(
            "orderhook_channel_connected",
            "1 while the shop's message channel is open",
            ["platform", "shop"],
            registry=self.registry,
        )
        self.channel_reconnects = Counter(
            "orderhook_channel_reconnects",
            "Times the shop's message channel was reopened after a drop or a failed connect",
            ["platform", "shop"],
            registry=self.registry,
        )
        self.channel_last_message = Gauge(
            "orderhook_channel_last_message_timestamp_seconds",
            "Unix time of the last message received on the shop's channel",
            ["platform", "shop"],
            registry=self.registry,
        )
        self.channel_lag = Gauge(
            "orderhook_channel_lag_seconds",
            "Publish-to-receipt delay of the last message on the shop's channel",
            ["platform", "shop"],
            registry=self.registry,
        )
        self.outbox_attempts = Counter(
            "orderhook_outbox_attempts",
            "Outbox send attempts by kind and what became of the row "
            "(done, retry, dead, disabled, lost_lease)",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.outbox_rows = Gauge(
            "orderhook_outbox_rows",
            "Outbox rows by state (refreshed by the delivery worker)",
            ["state"],
            registry=self.registry,
        )
        self.outbox_send_seconds = Histogram(
            "orderhook_outbox_send_seconds",
            "Duration of one outbox send (request to answer, or to the error)",
            ["kind"],
            buckets=(*ACK_BUCKETS, 10.0, 30.0),
            registry=self.registry,
        )

        self.tls_days_left = Gauge(
            "orderhook_tls_certificate_days_left",
            "Days until the certificate the hub serves HTTPS with expires (negative: expired)",
            registry=self.registry,
        )

    def watch_workers(self, workers_cpu: Callable[[], dict[str, float]]) -> None:
        """Report CPU per process, the hub's and its workers' (`Store.workers_cpu`)."""
        self.registry.register(CpuCollector(workers_cpu))

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ApiCollector:
    """Platform API health, read at scrape time from the clients' shared runtimes."""

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "orderhook_api_breaker_state",
            "Circuit breaker per platform API: 0 closed, 1 half-open, 2 open",
            labels=["platform"],
        )
        calls = CounterMetricFamily(
            "orderhook_api_calls",
            "Platform API calls by outcome (ok, circuit_open, stale, or the error type)",
            labels=["platform", "outcome"],
        )
        for runtime in apiclient.current_runtimes():
            state.add_metric([runtime.platform], float(runtime.breaker.state))
            for outcome, count in sorted(runtime.stats.calls.items()):
                calls.add_metric([runtime.platform, outcome], count)
        yield state
        yield calls

    def describe(self) -> list[Metric]:
        return []


class CpuCollector:
    """CPU seconds per process, read at scrape time: in a burst, the rate of each against
    the cores tells which one limits the acks (docs/performance.md)."""

    def __init__(self, workers_cpu: Callable[[], dict[str, float]]) -> None:
        self.workers_cpu = workers_cpu

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            "orderhook_cpu_seconds",
            "User + system CPU seconds by process: the hub itself (event loop, writer "
            "thread), its ingest writer and stage runner (a replaced worker starts from 0)",
            labels=["process"],
        )
        own = os.times()
        cpu.add_metric(["hub"], own.user + own.system)
        for name, seconds in self.workers_cpu().items():
            cpu.add_metric([name], seconds)
        yield cpu

    def describe(self) -> list[Metric]:
        return []
