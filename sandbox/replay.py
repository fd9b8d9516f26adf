"""Replay recorded requests: by id, by filter or from recording files, to the hub itself
or another URL; byte-identical, or re-signed with a fresh timestamp.

Every response is stored next to the original (`replay_results`), with a diff when they
differ. A run is a row in `replay_runs`; an interrupted run is resumed by skipping the
items that already got an answer.

Sending is `concurrency` workers taking the next item from one shared iterator, over one
aiohttp session (`exact_http`); answers are stored in group commits (`ResultLog`), so
neither a request nor an answer waits for a commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiolimiter import AsyncLimiter

from hub.model import iso_utc, utcnow
from hub.settings import Settings
from hub.store import Store, sandbox_sql
from hub.store.sandbox_sql import RequestFilter, select_requests
from sandbox import recordings
from sandbox.sending import NoAnswer, Prepared, SendError, diff, request_for

if TYPE_CHECKING:
    from sandbox.exact_http import Wire

# requests in flight by default: measured against a bare endpoint on 127.0.0.1 (see
# docs/performance.md); a slower endpoint gains more from more
DEFAULT_CONCURRENCY = 8


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
    rows = store.run_read(select_requests, flt)
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


async def send_one(wire: Wire, item: Item, plan: Plan) -> Outcome:
    try:
        req = prepare(item, plan)
    except SendError as exc:
        return Outcome(item, plan.target, error=str(exc))
    outcome = Outcome(item, req.url)
    started = time.perf_counter()
    try:
        answer = await wire.send(req)
    except (SendError, NoAnswer) as exc:
        outcome.error = str(exc)
        return outcome
    outcome.elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    outcome.status, outcome.body = answer.status, answer.body
    original_status = (item.recording.get("response") or {}).get("status")
    outcome.diff = diff(original_status, original_body(item.recording), answer.status, answer.body)
    outcome.same = not outcome.diff  # diff() is '' exactly when the answers are the same
    return outcome


async def run(
    items: list[Item],
    plan: Plan,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    rate: float | None = None,
    timeout: float = 10.0,
    on_outcome: Callable[[Outcome], Any] | None = None,
) -> list[Outcome]:
    """Send every item (at most `concurrency` at once, `rate` per second); `on_outcome`
    is called (awaited if it returns a coroutine) for each as it completes."""
    from sandbox import exact_http  # aiohttp: imported by the commands that send, only

    limiter = AsyncLimiter(rate, 1) if rate else None
    queue = iter(items)  # shared by the workers: each takes the next item when free
    outcomes: list[Outcome] = []
    concurrency = max(1, concurrency)

    async with exact_http.wire(plan.target, concurrency, timeout) as wire:

        async def worker() -> None:
            for item in queue:
                if limiter is not None:
                    await limiter.acquire()
                outcome = await send_one(wire, item, plan)
                outcomes.append(outcome)
                if on_outcome is not None:
                    result = on_outcome(outcome)
                    if asyncio.iscoroutine(result):
                        await result

        async with asyncio.TaskGroup() as workers:
            for _ in range(min(concurrency, len(items))):
                workers.create_task(worker())
    return outcomes


# --- storing -----------------------------------------------------------------------------


class ResultLog:
    """A run's answers stored as they come, in group commits: one commit at a time (on a
    thread: its fsync does not hold the loop), at most one every COMMIT_EVERY seconds,
    with every answer that arrived meanwhile. A commit per answer costs more CPU than
    sending it (~0.5 ms: the write turn's locks, BEGIN, COMMIT, fsync)."""

    COMMIT_EVERY = 0.05  # seconds an answer may wait to be stored (Ctrl-C stores it too)

    def __init__(self, store: Store, run_id: int) -> None:
        self.run_id = run_id
        self.pending: list[dict[str, Any]] = []
        self.committing: list[dict[str, Any]] = []  # until its commit is known to be done
        self._writer: sandbox_sql.ResultWriter | None = sandbox_sql.ResultWriter(store.path)
        self._writing: asyncio.Task[None] | None = None

    def add(self, outcome: Outcome) -> None:
        if self._writing is not None and self._writing.done():
            self._writing.result()  # a failed commit stops the run here, not at its end
            self._writing = None
        self.pending.append(outcome.as_row(self.run_id))
        if self._writing is None:
            self._writing = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self.pending:
            await asyncio.sleep(self.COMMIT_EVERY)
            self.committing, self.pending = self.pending, []
            await asyncio.to_thread(self._save, self.committing)
            self.committing = []

    def _save(self, rows: list[dict[str, Any]]) -> None:
        if self._writer is not None:
            self._writer.save(rows)

    async def close(self, state: str = "done") -> None:
        """Wait for the commit under way, then store the rest with the run's state."""
        if self._writing is not None:
            await self._writing
            self._writing = None
        await asyncio.to_thread(self.finish, state)

    def finish(self, state: str) -> None:
        """Store what is left with the run's state, also after the loop is gone: a
        commit cancelled with it may or may not have run, so its rows are written again
        (an upsert: the same row either way)."""
        if self._writer is None:  # finished already (Ctrl-C as the run was closing)
            return
        rows, self.pending, self.committing = self.committing + self.pending, [], []
        writer, self._writer = self._writer, None
        try:
            writer.save(rows, (self.run_id, state))
        finally:
            writer.close()
