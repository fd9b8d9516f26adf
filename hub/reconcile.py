"""Reconciliation: the safety net under the pushes.

Per shop whose platform has an API client, every `options.reconcile_seconds` (default
60) pull the orders changed since the shop's watermark minus an overlap
(`options.reconcile_overlap_seconds`, default 300), and feed every page of the answer
into the SAME pipeline as a push: the page's bytes are recorded as a request (channel
`reconcile`, source `reconcile`), its events are deduped on their content key against
everything the pushes already delivered. An event that is new here is a change the
pushes missed; it is counted (`orderhook_reconcile_events{result="new"}`) and kept
with `source = 'reconcile'`.

The watermark only moves after a window was pulled completely from the live platform
(not from the last-good cache), so a failed or degraded run is repeated next time.
Pages without events are counted in the run's row but not recorded as requests
(a quiet shop would otherwise store one empty poll a minute), and neither are pages
whose events are all known already: the overlap makes every change come back in
several polls, and on a peak night storing each page again would be gigabytes of
copies. "Known" is the same dedupe key, or, for a transition an order makes once
(created, paid, shipped, cancelled, refunded), any event of that kind for the order:
a push may carry the message's time where the poll carries the order's, and a
reconcile must not report such a change as missed. The UNIQUE key in the ingest stays
the judge for the rest.

A pull that fails in a way only a person can fix (`apiclient.needs_person`: no token,
an expired one, credentials the platform refuses) blocks the shop: `reconcile_state`
says since when, why, how many tries and when the next one is (`/api/reconcile`, the
board, Datasette); the log says it once per error code, and the next tries come
after twice the interval, then four times, up to `options.reconcile_backoff_max_seconds`
(default 1800). A config reload that changes the shop restarts its loop, which tries at
once. A transient failure (timeout, 5xx, rate limit, open circuit) keeps the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import connectors
from connectors import apiclient
from connectors.apiclient import Page
from connectors.base import ApiError, Reply
from hub.model import iso_utc, utcnow
from hub.store import IngestJob, RequestRecord, Store, reconcile_sql

if TYPE_CHECKING:
    from hub.metrics import Metrics
    from hub.runtime import Hub
    from hub.settings import Shop

log = logging.getLogger("orderhook.reconcile")

DEFAULT_INTERVAL = 60.0
DEFAULT_OVERLAP = 300.0
DEFAULT_LOOKBACK = 3600.0
DEFAULT_BACKOFF_MAX = 1800.0
NO_REPLY = Reply(200, b"")  # a poll answers nobody


@dataclass
class RunResult:
    shop: str
    platform: str
    start: datetime
    end: datetime
    run_id: int = 0
    outcome: str = "running"  # ok | stale | failed
    pages: int = 0
    stale_pages: int = 0
    seen: int = 0
    bad_rows: int = 0
    new: int = 0
    new_by_kind: Counter[str] = field(default_factory=Counter)
    event_ids: list[int] = field(default_factory=list)  # the events it inserted
    missed: list[dict[str, Any]] = field(default_factory=list)  # the new events
    error_code: str | None = None
    error: str | None = None
    blocked: bool = False  # failed in a way only a person can fix
    blocked_tries: int = 0  # tries in a row that failed with this error_code
    unblocked: dict[str, Any] | None = None  # the block an ok run ended (since, code, tries)

    @property
    def duplicates(self) -> int:
        return self.seen - self.new


Progress = Callable[[Page, RunResult], None]


def option_seconds(shop: Shop, key: str, default: float) -> float:
    seconds: float = apiclient.positive(shop.options, key, default)
    return seconds


def has_api(shop: Shop) -> bool:
    """Does this shop's platform have an API client, and is reconciliation wanted?"""
    if shop.options.get("reconcile") is False or not shop.app_key:
        return False
    try:
        __import__(f"connectors.{shop.platform}.api")
    except ModuleNotFoundError:
        return False
    return True


def page_record(shop: Shop, page: Page) -> RequestRecord:
    headers = [("x-orderhook-api-method", page.method)]
    if page.window:
        headers.append(
            ("x-orderhook-window", f"{iso_utc(page.window[0])}/{iso_utc(page.window[1])}")
        )
    if page.stale:
        headers.append(("x-orderhook-stale", "last-good answer served while the circuit is open"))
    return RequestRecord(
        reason="unreadable_rows" if page.bad_rows else None,
        detail=f"{page.bad_rows} order row(s) could not be read" if page.bad_rows else None,
        received_at=iso_utc(utcnow()),
        method="POST",
        path=f"/reconcile/{shop.platform}/{shop.name}",
        query=urlencode({k: str(v) for k, v in page.params.items()}),
        headers=headers,
        body=page.raw,
        peer=None,
        platform=shop.platform,
        shop=shop.name,
        channel="reconcile",
        source="reconcile",
    )


async def reconcile_shop(
    store: Store,
    shop: Shop,
    start: datetime,
    end: datetime,
    *,
    client: Any = None,
    trigger: str = "schedule",
    metrics: Metrics | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Pull [start, end) for one shop, feed it through the pipeline, log the run."""
    result = RunResult(shop.name, shop.platform, start, end)
    result.run_id = await store.write(
        reconcile_sql.start_run, shop.name, shop.platform, trigger, start, end
    )
    own_client = client is None
    try:
        if client is None:
            client = connectors.api_client(shop)
        async for page in client.changed_pages(start, end):
            result.pages += 1
            result.stale_pages += int(page.stale)
            result.bad_rows += page.bad_rows
            result.seen += len(page.events)
            known = await store.read(reconcile_sql.known_events, page.events)
            fresh = [e for i, e in enumerate(page.events) if i not in known]
            if fresh or page.bad_rows:
                ingested = await store.ingest(IngestJob(page_record(shop, page), fresh, NO_REPLY))
                result.event_ids += ingested.new_event_ids
                result.new += len(ingested.new_event_ids)
            if progress is not None:
                progress(page, result)
        result.outcome = "stale" if result.stale_pages else "ok"
        if result.bad_rows:
            result.error_code = "unreadable_rows"
            result.error = (
                f"{result.bad_rows} order row(s) could not be read; see the recorded pages"
            )
    except ApiError as exc:
        result.outcome, result.error_code, result.error = "failed", exc.code, exc.message
        result.blocked = apiclient.needs_person(exc)
    except Exception as exc:  # a bug or a malformed answer: log the run as failed, keep going
        log.exception("reconcile %s failed", shop.name)
        result.outcome, result.error_code = "failed", "internal_error"
        result.error = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        if own_client and client is not None:
            await client.aclose()
    result.missed = await store.write(_finish, result)
    result.new_by_kind = Counter(e["kind"] for e in result.missed)
    if metrics is not None:
        metrics.reconcile_runs.labels(shop.platform, shop.name, result.outcome).inc()
        if result.blocked or result.outcome == "ok":  # a transient failure changes neither
            blocked = metrics.reconcile_blocked.labels(shop.platform, shop.name)
            blocked.set(1 if result.blocked else 0)
        metrics.reconcile_events.labels(shop.platform, shop.name, "new").inc(result.new)
        metrics.reconcile_events.labels(shop.platform, shop.name, "duplicate").inc(
            result.duplicates
        )
    if result.new:
        log.warning(
            "reconcile %s: %d change(s) the pushes had missed (%s)",
            shop.name,
            result.new,
            ", ".join(f"{k} {n}" for k, n in sorted(result.new_by_kind.items())),
        )
    return result


def _finish(conn: Any, result: RunResult) -> list[dict[str, Any]]:
    reconcile_sql.finish_run(
        conn,
        result.run_id,
        outcome=result.outcome,
        pages=result.pages,
        stale_pages=result.stale_pages,
        events_seen=result.seen,
        events_new=result.new,
        error_code=result.error_code,
        error=result.error,
    )
    if result.outcome == "ok":
        reconcile_sql.advance(
            conn, result.shop, result.platform, result.run_id, result.start, result.end
        )
        result.unblocked = reconcile_sql.clear_blocked(conn, result.shop)
    elif result.blocked:
        result.blocked_tries = reconcile_sql.mark_blocked(
            conn, result.shop, result.platform, result.error_code or "", result.error or ""
        )
    # the events the run inserted: exactly what the pushes had missed
    return reconcile_sql.events_by_id(conn, result.event_ids)


def next_window(shop: Shop, mark: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    if mark is None:
        lookback = option_seconds(shop, "reconcile_lookback_seconds", DEFAULT_LOOKBACK)
        return now - timedelta(seconds=lookback), now
    overlap = option_seconds(shop, "reconcile_overlap_seconds", DEFAULT_OVERLAP)
    return min(mark, now) - timedelta(seconds=overlap), now


def backoff(interval: float, ceiling: float, tries: int) -> float:
    """The wait after the `tries`-th blocked try in a row: twice the interval, then
    doubling, never above `ceiling` (nor below the interval)."""
    return max(interval, min(ceiling, interval * 2.0 ** min(tries, 32)))


Sleep = Callable[[float], Awaitable[None]]


async def _shop_loop(hub: Hub, shop: Shop, sleep: Sleep = asyncio.sleep) -> None:
    interval = option_seconds(shop, "reconcile_seconds", DEFAULT_INTERVAL)
    ceiling = option_seconds(shop, "reconcile_backoff_max_seconds", DEFAULT_BACKOFF_MAX)
    said: str | None = None  # the error code of the block last logged
    while True:
        delay = interval
        try:
            mark = await hub.store.read(reconcile_sql.watermark, shop.name)
            start, end = next_window(shop, mark, utcnow())
            result = await reconcile_shop(hub.store, shop, start, end, metrics=hub.metrics)
            if result.blocked:
                delay = backoff(interval, ceiling, result.blocked_tries)
                await hub.store.write(
                    reconcile_sql.set_next_try, shop.name, utcnow() + timedelta(seconds=delay)
                )
                if result.error_code != said:
                    said = result.error_code
                    log_blocked(result, delay, ceiling)
            elif result.outcome == "ok":
                said = None
                if result.unblocked:
                    log.warning(
                        "reconcile resumed for shop %s (blocked since %s by %s, %d tries)",
                        shop.name,
                        result.unblocked["since"],
                        result.unblocked["code"],
                        result.unblocked["tries"],
                    )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reconcile loop for %s failed; next try in %.0f s", shop.name, interval)
        await sleep(delay)


def log_blocked(result: RunResult, delay: float, ceiling: float) -> None:
    log.error(
        "reconcile blocked for shop %s (%s): %s: %s. It needs a person: fix the shop's "
        "token or credentials in the config and restart the hub (tried again at once). "
        "Until then tries back off: next in %.0f s, then at most every %.0f s",
        result.shop,
        result.platform,
        result.error_code,
        result.error,
        delay,
        max(delay, ceiling),
    )


def check_shop(shop: Shop) -> None:
    """The shop's reconcile and API options make sense (ValueError says which not)."""
    apiclient.check_options(shop)
    for key, default in (
        ("reconcile_seconds", DEFAULT_INTERVAL),
        ("reconcile_overlap_seconds", DEFAULT_OVERLAP),
        ("reconcile_lookback_seconds", DEFAULT_LOOKBACK),
        ("reconcile_backoff_max_seconds", DEFAULT_BACKOFF_MAX),
    ):
        option_seconds(shop, key, default)


RESCAN_SECONDS = 5.0  # how soon a reloaded config's shops are picked up


def eligible(hub: Hub, refused: set[tuple[str, str]]) -> dict[str, Shop]:
    """The shops to reconcile under the hub's current settings; a shop whose options
    are wrong is left out, its reason logged once per version of its options."""
    wanted: dict[str, Shop] = {}
    for shop in hub.settings.shops.values():
        if not has_api(shop):
            continue
        try:
            check_shop(shop)
        except ValueError as exc:
            mark = (shop.name, repr(sorted(shop.options.items())))
            if mark not in refused:
                refused.add(mark)
                log.error("reconcile disabled for shop %s: %s", shop.name, exc)
            continue
        wanted[shop.name] = shop
    return wanted


async def run(hub: Hub) -> None:
    """The service: one loop per shop with an API client, following config reloads
    (`hub.settings` replaced: new shops start, removed or changed ones restart). It
    also owns the shared API clients of its event loop and closes them at stop."""
    running: dict[str, tuple[Shop, asyncio.Task[None]]] = {}
    refused: set[tuple[str, str]] = set()
    try:
        while True:
            wanted = eligible(hub, refused)
            for name, (shop, task) in list(running.items()):
                if wanted.get(name) != shop or task.done():
                    task.cancel()
                    del running[name]
            for name, shop in wanted.items():
                if name not in running:
                    task = asyncio.create_task(_shop_loop(hub, shop), name=f"reconcile:{name}")
                    running[name] = (shop, task)
            await asyncio.sleep(RESCAN_SECONDS)
    finally:
        tasks = [task for _shop, task in running.values()]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
        await apiclient.aclose_loop()
