"""Replay speed: requests per second sent from recordings to a local endpoint.

`orderhook replay` is measured when the CLI has it; until then this sends what it would:
recordings built from the hub's `requests` rows by `sandbox.recordings`, each posted
byte for byte with httpx (one long-lived AsyncClient, the recorded headers without the
per-connection ones), first one at a time (replay's default order-preserving mode),
then with a few in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench import dbread
from bench.servers import Server
from hub.store import queries
from sandbox import recordings

HOP_BY_HOP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding"}


def load_recordings(db: Path, limit: int) -> list[dict[str, Any]]:
    rows = dbread.read(db, lambda conn: queries.list_requests(conn, limit=limit))
    return [recordings.from_row(row) for row in reversed(rows)]


async def _send_all(url: str, items: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    queue = list(reversed(items))
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def worker() -> None:
            while queue:
                rec = queue.pop()
                headers = [
                    (k, v) for k, v in recordings.headers(rec) if k.lower() not in HOP_BY_HOP
                ]
                response = await client.request(
                    rec["method"],
                    rec["path"],
                    headers=headers,
                    content=recordings.body_bytes(rec),
                )
                statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": len(items),
        "seconds": round(elapsed, 3),
        "rps": round(len(items) / elapsed, 1) if elapsed else None,
        "statuses": statuses,
    }


def run(work: Path, db: Path, limit: int, echo: Callable[[str], None]) -> dict[str, Any]:
    items = load_recordings(db, limit)
    if not items:
        return {"skipped": "no recorded requests to replay"}
    bare = Server("bare").start(work)
    try:
        runs = []
        for concurrency in (1, 8):
            result = asyncio.run(_send_all(bare.url, items, concurrency))
            runs.append(result)
            echo(f"  replay x{concurrency}: {result['rps']:8.0f} req/s ({len(items)} recordings)")
    finally:
        bare.stop()
    return {
        "method": "recordings + httpx (orderhook replay is not in the CLI yet)",
        "target": "bare Starlette endpoint on 127.0.0.1",
        "runs": runs,
    }
