"""Replay recorded requests: by id, by filter or from recording files, to the hub itself
or another URL; byte-identical, or re-signed with a fresh timestamp.

Every response is stored next to the original (`replay_results`), with a diff when they
differ. A run is a row in `replay_runs`; an interrupted run is resumed by skipping the
items that already got an answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiolimiter import AsyncLimiter

from hub.model import iso_utc, utcnow
from hub.settings import Settings
from hub.store import Store
from hub.store.sandbox_sql import RequestFilter, select_requests
from sandbox import recordings
from sandbox.sending import (
    Prepared,
    SendError,
    bare_client,
    diff,
    request_for,
    same_answer,
)


@dataclass(frozen=True, slots=True)
class Item:
    """One request to replay: where it came from and its recording."""

    key: str  # 'request:17' or a file path
    recording: dict[str, Any]
    request_id: int | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    target: str
    keep_path: bool = True
    resign: bool = False
    secret: str | None = None  # re-sign with this instead of the shop's configured one
    settings: Settings | None = None


@dataclass(slots=True)
class Outcome:
    item: Item
    url: str
    status: int | None = None
    body: bytes = b""
    error: str | None = None
    same: bool = False
    diff: str = ""
    elapsed_ms: float | None = None
    sent_at: str = field(default_factory=lambda: iso_utc(utcnow()))

    def as_row(self, run_id: int) -> dict[str, Any]:
        response = self.item.recording.get("response") or {}
        return {
            "run_id": run_id,
            "item": self.item.key,
            "request_id": self.item.request_id,
            "sent_at": self.sent_at,
            "url": self.url,
            "original_status": response.get("status"),
            "original_body": original_body(self.item.recording),
            "status": self.status,
            "body": self.body if self.status is not None else None,
            "error": self.error,
            "same": int(self.same),
            "diff": self.diff or None,
            "elapsed_ms": self.elapsed_ms,
        }

    def as_json(self) -> dict[str, Any]:
        response = self.item.recording.get("response") or {}
        return {
            "item": self.item.key,
            "url": self.url,
            "original_status": response.get("status"),
            "status": self.status,
            "same": self.same,
            "error": self.error,
            "diff": self.diff or None,
        }


def original_body(recording: dict[str, Any]) -> bytes:
    response = recording.get("response") or {}
    return recordings.decode_body(
        response.get("body") or "", response.get("body_encoding") or "utf-8"
    )


# --- selecting ---------------------------------------------------------------------------


def from_store(store: Store, flt: RequestFilter) -> list[Item]:
    rows = store.run(select_requests, flt)
    return [Item(f"request:{r['id']}", recordings.from_row(r), r["id"]) for r in rows]


def recording_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given, and every *.json under a directory (sorted: a stable order)."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.rglob("*.json")) if path.is_dir() else [path])
    return found


def from_files(paths: Iterable[Path]) -> list[Item]:
    """Recording files as items; a file that is not a recording raises ValueError."""
    return [Item(str(p), recordings.load(p)) for p in recording_files(paths)]


# --- sending -----------------------------------------------------------------------------


def prepare(item: Item, plan: Plan) -> Prepared:
    rec = item.recording
    path = rec["path"] + (f"?{rec['query']}" if rec.get("query") else "")
    url = plan.target.rstrip("/") + path if plan.keep_path else plan.target
    return request_for(
        rec, url, resign_with=plan.secret, resigning=plan.resign, settings=plan.settings
    )


async def send_one(client: httpx.AsyncClient, item: Item, plan: Plan) -> Outcome:
    try:
        req = prepare(item, plan)
    except SendError as exc:
        return Outcome(item, plan.target, error=str(exc))
    outcome = Outcome(item, req.url)
    started = time.perf_counter()
    try:
        response = await client.request(req.method, req.url, headers=req.headers, content=req.body)
    except httpx.HTTPError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        return outcome
    outcome.elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    outcome.status, outcome.body = response.status_code, response.content
    original_status = (item.recording.get("response") or {}).get("status")
    before = original_body(item.recording)
    outcome.same = same_answer(original_status, before, outcome.status, outcome.body)
    outcome.diff = diff(original_status, before, outcome.status, outcome.body)
    return outcome


async def run(
    items: list[Item],
    plan: Plan,
    *,
    concurrency: int = 4,
    rate: float | None = None,
    timeout: float = 10.0,
    on_outcome: Callable[[Outcome], Any] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Outcome]:
    """Send every item (at most `concurrency` at once, `rate` per second); `on_outcome`
    is awaited for each as it completes (store it, print it, advance the bar)."""
    limiter = AsyncLimiter(rate, 1) if rate else None
    gate = asyncio.Semaphore(max(1, concurrency))
    outcomes: list[Outcome] = []

    async with bare_client(timeout=timeout, transport=transport) as client:

        async def one(item: Item) -> None:
            async with gate:
                if limiter is not None:
                    await limiter.acquire()
                outcome = await send_one(client, item, plan)
            outcomes.append(outcome)
            if on_outcome is not None:
                result = on_outcome(outcome)
                if asyncio.iscoroutine(result):
                    await result

        await asyncio.gather(*(one(item) for item in items))
    return outcomes
