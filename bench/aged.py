"""Aged-database benchmark: the reads the hub runs while it works, and retention's
steps, on a database the size of a busy month.

    .venv/bin/python -m bench.aged                          # 2M requests, 2M outbox rows, ...
    .venv/bin/python -m bench.aged --scale 0.1 --rounds 5 --out /tmp/aged.json

Every other bench starts from an empty database. A hub a month into production holds
`hub.retention_days` of raw requests, `delivery.keep_done_days` of delivered outbox
rows, and every order and task it ever made; a read that walks one of those tables is
invisible on an empty hub and costs seconds there. This builds such a database with the
current schema (SQL only, no hub: the shapes, not the history, matter) and times each
read the hub runs on a schedule or per call, best of `--rounds`, with what it found (a
read that finds nothing measures nothing). Retention's steps run inside a transaction
that is rolled back, so every round sees the same rows. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import report
from hub.model import iso_utc
from hub.store import Store, board_sql, delivery_sql, dispatch_sql, orders_sql, queries, sandbox_sql

NOW = datetime(2026, 11, 11, 12, tzinfo=UTC)
MONTH = timedelta(days=30)
# a busy month at scale 1 (the figures of docs/performance.md, "Seventh round")
SIZES = {"requests": 2_000_000, "outbox": 2_000_000, "orders": 1_000_000, "tasks": 500_000}
# what each read is, who runs it and how often: the report's labels
READS = {
    "board snapshot": "the live board, up to 4 a second while watched",
    "stream, all outcomes, at the tip": "orderhook listen, per commit or second",
    "stream, a rare outcome, from the start": "orderhook listen --outcome error",
    "API: newest rejected requests": "GET /api/requests?outcome=rejected",
    "API: newest accepted requests": "GET /api/requests?outcome=accepted",
    "outbox gauge": "every lease sweep (15 s)",
    "outbox: dead rows": "outbox list --dead, retry --dead",
    "outbox: delivered rows": "GET /api/outbox?state=done",
    "order by id alone": "an ERP's shipment by order id",
    "closed tasks": "GET /api/tasks?state=done",
    "retention step: requests": "hourly, in the write turn",
    "retention step: outbox": "hourly, in the write turn",
}


def build(db: Path, scale: float) -> dict[str, int]:
    """The month's rows, spread over the 30 days before NOW."""
    sizes = {table: max(2000, int(n * scale)) for table, n in SIZES.items()}
    Store(db).migrate()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    start = (NOW - MONTH).timestamp()

    def rows(table: str) -> str:
        """`m(i, t)`: i from 1 to ?1 (the table's size), t the i-th of ?1 moments over the
        month as ISO text."""
        step = MONTH.total_seconds() / sizes[table]
        return (
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1), "
            f"m(i, t) AS (SELECT i, strftime('%Y-%m-%dT%H:%M:%fZ', {start} + i * {step}, "
            "'unixepoch') FROM k) "
        )

    conn.execute("BEGIN")
    # 1% rejected (two reasons), 5% duplicates, one error in 10,000 and the last one
    conn.execute(
        rows("requests") + "INSERT INTO requests (received_at, method, path, headers, body, "
        "platform, shop, outcome, reason, response_status, handling_ms) "
        "SELECT t, 'POST', '/webhooks/standard/acme', '[]', "
        "randomblob(390), 'standard', 'acme', "
        "CASE WHEN i % 10000 = 0 OR i = ?1 THEN 'error' WHEN i % 100 = 0 THEN 'rejected' "
        "WHEN i % 20 = 0 THEN 'duplicate' ELSE 'accepted' END, "
        "CASE WHEN i % 10000 = 0 OR i = ?1 THEN 'store' WHEN i % 200 = 0 THEN 'bad_signature' "
        "WHEN i % 100 = 0 THEN 'stale_timestamp' END, 200, 1.5 FROM m",
        (sizes["requests"],),
    )
    # four platforms, three shops each; a fifth of the orders still open
    conn.execute(
        rows("orders") + "INSERT INTO orders (platform, shop, order_id, status, amount, "
        "currency, first_event_id, last_event_id, occurred_at, created_at, updated_at) "
        "SELECT CASE i % 4 WHEN 0 THEN 'taobao' WHEN 1 THEN 'jd' WHEN 2 THEN 'douyin' "
        "ELSE 'pinduoduo' END, 'shop' || (i % 3), CAST(4000000000 + i * 7919 AS TEXT), "
        "CASE i % 10 WHEN 0 THEN 'paid' WHEN 1 THEN 'assigned' ELSE 'shipped' END, "
        "'199.00', 'CNY', i, i, t, t, t FROM m",
        (sizes["orders"],),
    )
    # one task in twenty open, the rest done
    conn.execute(
        rows("tasks") + "INSERT INTO tasks (platform, shop, order_id, grp, priority, state, "
        "queue, assignee, created_at, waiting_since, closed_at, updated_at) "
        "SELECT 'taobao', 'shop0', 't' || i, 'general', i % 3, "
        "CASE WHEN i % 20 = 0 THEN 'assigned' ELSE 'done' END, 'group', 'ana', "
        "t, t, t, t FROM m",
        (sizes["tasks"],),
    )
    # delivered over the month; one in a thousand dead, one in a thousand waiting
    conn.execute(
        rows("outbox") + "INSERT INTO outbox (kind, target, order_key, payload, state, "
        "attempts, next_attempt_at, settled_at, created_at, updated_at) "
        "SELECT 'subscription', '1', 'taobao:shop0:' || i, '{\"event\":\"paid\"}', "
        "CASE i % 1000 WHEN 0 THEN 'dead' WHEN 1 THEN 'pending' ELSE 'done' END, 0, "
        "t, t, t, t FROM m",
        (sizes["outbox"],),
    )
    conn.execute("COMMIT")
    conn.close()
    return sizes


def reads(conn: sqlite3.Connection) -> dict[str, Callable[[], int]]:
    """Each read, as the hub runs it, returning how many rows (or counts) it found."""
    tip = conn.execute("SELECT max(id) FROM requests").fetchone()[0] - 100
    outcomes = ("accepted", "duplicate", "rejected", "error")
    order_id = conn.execute(
        "SELECT order_id FROM orders WHERE rowid = (SELECT max(rowid) / 2 FROM orders)"
    ).fetchone()[0]
    retention_days = iso_utc(NOW - timedelta(days=29))

    def board() -> int:
        snap = board_sql.snapshot(conn, NOW)
        return sum(snap["rejected_last_hour"].values()) + snap["dead_outbox"]["total"]

    def rolled_back(step: Callable[[sqlite3.Connection, str], int]) -> Callable[[], int]:
        def run() -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                return step(conn, retention_days)
            finally:
                conn.execute("ROLLBACK")

        return run

    def outbox(state: str) -> Callable[[], int]:
        return lambda: len(delivery_sql.list_rows(conn, delivery_sql.RowFilter(state=state)))

    return {
        "board snapshot": board,
        "stream, all outcomes, at the tip": lambda: len(
            sandbox_sql.requests_after(conn, tip, outcomes)
        ),
        "stream, a rare outcome, from the start": lambda: len(
            sandbox_sql.requests_after(conn, 0, ("error",))
        ),
        "API: newest rejected requests": lambda: len(
            queries.list_requests(conn, outcome="rejected")
        ),
        "API: newest accepted requests": lambda: len(
            queries.list_requests(conn, outcome="accepted")
        ),
        "outbox gauge": lambda: sum(delivery_sql.state_counts(conn).values()),
        "outbox: dead rows": outbox("dead"),
        "outbox: delivered rows": outbox("done"),
        "order by id alone": lambda: len(orders_sql.find_orders(conn, order_id)),
        "closed tasks": lambda: len(dispatch_sql.list_tasks(conn, states=("done",))),
        "retention step: requests": rolled_back(queries.prune_requests),
        "retention step: outbox": rolled_back(delivery_sql.prune_done),
    }


def measure(db: Path, rounds: int) -> dict[str, dict[str, Any]]:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        out: dict[str, dict[str, Any]] = {}
        for name, read in reads(conn).items():
            best, found = float("inf"), 0
            for _ in range(rounds):
                started = time.perf_counter()
                found = read()
                best = min(best, time.perf_counter() - started)
            out[name] = {"ms": round(best * 1000, 3), "found": found, "who": READS[name]}
        return out
    finally:
        conn.close()


def run(work: Path, scale: float, rounds: int) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    db = work / "aged.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    started = time.monotonic()
    sizes = build(db, scale)
    built = time.monotonic() - started
    return {
        "scale": scale,
        "rows": sizes,
        "build_seconds": round(built, 1),
        "db_bytes": db.stat().st_size,
        "reads": measure(db, rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: the sizes above")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report.emit(run(Path(tmp), args.scale, args.rounds), args.out)


if __name__ == "__main__":
    main()
