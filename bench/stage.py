"""Post-commit stage benchmark: CPU and SQL statements per applied event of
`hub.dispatch.engine.process` (apply to orders, route, close, hand out), without HTTP.

    .venv/bin/python -m bench.stage                         # 20,000 new paid orders
    .venv/bin/python -m bench.stage --mix --batch 500       # created/paid/shipped/cancelled
    .venv/bin/python -m bench.stage --events 5000 --repeat 5 --out bench/stage.json

The events are written first (as ingest writes them); then the stage is run batch after
batch, each batch in its own transaction as in the hub, and only the time inside
`process` is counted, not the commit: process CPU time, Python and SQLite together
(SQLite's steps run without the GIL, the rest holds it), and the SQL statements it
sends. The tasks it makes stay open, so the first and the last tenth of the run tell
whether the cost grows with the open tasks. The machine is shared, so each figure is
the cheapest of `--repeat` runs. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import report
from bench.dispatch import PROVINCES, config_text
from connectors.base import Reply
from hub import settings as settings_mod
from hub.dispatch import engine, state
from hub.dispatch.config import DispatchConfig
from hub.model import Kind, OrderEvent
from hub.store import Store, ingest_sql
from hub.store.connection import connect
from hub.store.ingest_sql import IngestJob, RequestRecord

WRITE_CHUNK = 1000


def events(n: int, mix: bool, rng: random.Random) -> list[OrderEvent]:
    """`n` events: new paid orders, or (--mix) orders that are created, paid, then some
    shipped or cancelled, interleaved as a busy night delivers them (a few late)."""
    start = datetime(2026, 11, 11, tzinfo=UTC)
    out: list[OrderEvent] = []
    order = 0
    while len(out) < n:
        order += 1
        flow = [Kind.PAID]
        if mix:
            flow = [Kind.CREATED, Kind.PAID, rng.choice([Kind.SHIPPED, Kind.CANCELLED, Kind.OTHER])]
            if rng.random() < 0.1:
                flow[0], flow[1] = flow[1], flow[0]  # paid before created: out of order
        order_id = f"S{order:09d}"
        for step, kind in enumerate(flow):
            amount = f"{rng.randrange(100, 200000) / 100:.2f}"
            data = {
                "order_id": order_id,
                "amount": amount,
                "currency": "CNY",
                "province": rng.choice(PROVINCES),
                "items": [{"sku": f"X-{rng.randrange(1000)}", "category": "misc", "qty": 1}],
            }
            out.append(
                OrderEvent(
                    platform="standard",
                    shop="bench",
                    kind=kind,
                    order_id=order_id,
                    occurred_at=start + timedelta(seconds=order, milliseconds=step),
                    platform_type=f"order.{kind.value}",
                    message_id=f"msg_{order}_{step}",
                    amount=Decimal(amount),
                    currency="CNY",
                    payload={"type": f"order.{kind.value}", "data": data},
                    dedupe_key=f"m:standard:bench:msg_{order}_{step}",
                )
            )
    if mix:  # interleave orders so one batch holds several events of many orders
        out.sort(key=lambda e: (e.occurred_at.timestamp() // 1) // 50 + rng.random())
    return out[:n]


def write_events(conn: sqlite3.Connection, batch: list[OrderEvent]) -> None:
    ctx = ingest_sql.BatchContext()
    conn.execute("BEGIN IMMEDIATE")
    ctx.begin(conn)
    for event in batch:
        record = RequestRecord(
            received_at=ctx.now,
            method="POST",
            path="/webhooks/standard/bench",
            query="",
            headers=[],
            body=b"{}",
            peer=None,
            platform="standard",
            shop="bench",
        )
        job = IngestJob(record, [event], Reply(200, b"{}"))
        ingest_sql.ingest(conn, ctx, ingest_sql.to_wire(0, 0.0, job))
    ingest_sql.flush(conn, ctx)
    conn.execute("COMMIT")


class Counted:
    """The connection, counting the statements the stage sends it (SQLite's trace
    callback would also count each trigger's run, once per row it fires for)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.statements = 0

    def execute(self, *args: Any) -> sqlite3.Cursor:
        self.statements += 1
        return self.conn.execute(*args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        self.statements += 1
        return self.conn.executemany(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def run_stage(conn: sqlite3.Connection, config: DispatchConfig, batch: int) -> dict:
    counted = Counted(conn)
    applied = routed = assigned = 0
    cpu = 0.0
    wall = 0.0
    slices: list[tuple[int, float]] = []  # (events applied, CPU seconds) per batch
    while True:
        conn.execute("BEGIN IMMEDIATE")
        c0, w0 = time.process_time(), time.perf_counter()
        result = engine.process(counted, config, batch)  # type: ignore[arg-type]
        slices.append((result.applied, time.process_time() - c0))
        cpu += slices[-1][1]
        wall += time.perf_counter() - w0
        conn.execute("COMMIT")
        applied += result.applied
        routed += len(result.routed)
        assigned += len(result.assigned)
        if result.applied < batch:
            break
    return {
        "applied": applied,
        "routed": routed,
        "assigned": assigned,
        "cpu_us_per_event": round(cpu * 1e6 / max(applied, 1), 1),
        "wall_us_per_event": round(wall * 1e6 / max(applied, 1), 1),
        "statements_per_event": round(counted.statements / max(applied, 1), 2),
        # the first and the last tenth of the run: the tasks it made stay open (nobody
        # ships in a bench), so a cost that grows with open tasks shows as a rise here
        "cpu_us_per_event_first_tenth": _cpu_per_event(slices[: max(1, len(slices) // 10)]),
        "cpu_us_per_event_last_tenth": _cpu_per_event(slices[-max(1, len(slices) // 10) :]),
    }


def _cpu_per_event(slices: list[tuple[int, float]]) -> float:
    events = sum(n for n, _ in slices)
    return round(sum(cpu for _, cpu in slices) * 1e6 / max(events, 1), 1)


def once(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "stage.db"
        path = Path(tmp) / "stage.toml"
        path.write_text(config_text(db, args.rules), encoding="utf-8")
        config = settings_mod.load(path, env={}).sections["dispatch"]
        Store(db).run(state.sync, config)
        conn = connect(db)
        conn.execute("PRAGMA synchronous=OFF")  # the commit is not what is measured
        todo = events(args.events, args.mix, random.Random(5))
        for at in range(0, len(todo), WRITE_CHUNK):
            write_events(conn, todo[at : at + WRITE_CHUNK])
        try:
            return {"rules": len(config.rules), **run_stage(conn, config, args.batch)}
        finally:
            conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100, help="events per process() call")
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--mix", action="store_true", help="several events per order")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs; the cheapest counts (a shared machine)"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    runs = []
    for n in range(args.repeat):
        print(
            f"run {n + 1}/{args.repeat}: {args.events} events, batches of {args.batch}...",
            file=sys.stderr,
        )
        runs.append(once(args))
    best = min(runs, key=lambda run: run["cpu_us_per_event"])
    result = {
        "benchmark": "stage",
        "events": args.events,
        "mix": args.mix,
        "batch": args.batch,
        **best,
        "cpu_us_per_event_all_runs": [run["cpu_us_per_event"] for run in runs],
    }
    report.emit(result, args.out)


if __name__ == "__main__":
    main()
