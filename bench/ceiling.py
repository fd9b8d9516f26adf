"""The ceiling: how close to the bare Starlette endpoint a durable ingest can come on this
machine at all, whatever its code.

Each round runs six servers under the same uvicorn settings and the same closed-loop
load of clean signed pushes, in an order that rotates from round to round:
- bare: the Starlette endpoint that only reads the body (the benchmark's baseline, 1.00);
- raw: the same with no framework, a bare ASGI callable (what Starlette itself costs);
- durable: raw, plus each body appended to SQLite (WAL, synchronous=FULL) by one thread
  in group commits and acked only after its commit: the least any durable ingest does;
- lean: durable, plus what the issue names and nothing else, as tight as Python allows:
  the Standard Webhooks signature checked, the JSON parsed, the event deduplicated by
  its message id on a UNIQUE index, in the same group commit, then the ack, all in one
  process (the GIL: one core);
- lean-split: lean with the hub's split over the two cores, the event loop carrying
  requests and answers, a worker process verifying, parsing and committing;
- hub: the hub (that, plus the record's headers and reasons, the canonical event, its
  connector, orders and the dispatch stage, in three processes).

Each is reported as the median over rounds of its paired ratio to bare, so the rungs
say what each layer of work costs here, in the same run. The rungs that
record are checked afterwards: their tables must hold every push they acked.

    .venv/bin/python -m bench.ceiling                    # 5 rounds of 5 s
    .venv/bin/python -m bench.ceiling --rounds 9 --out /tmp/ceiling.json
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import ingest, pushes, report, serve, wrk
from bench.servers import Server, hub_config

RUNGS = ("bare", "raw", "durable", "lean", "lean-split", "hub")
# the rungs with a table to count: those started on a database of their own
DURABLE = tuple(kind for kind, (needs, _) in serve.KINDS.items() if needs == "db")


def run(work: Path, opts: ingest.Options, echo: Callable[[str], None] = print) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    # fresh databases: the pushes' ids repeat from one run to the next, and a hub that
    # found them recorded would answer every one as a duplicate (no order, no stage)
    for old in work.glob("*.db*"):
        old.unlink()
    dbs = {name: work / f"{name}.db" for name in DURABLE}
    servers = {name: Server(name, db=dbs.get(name)) for name in RUNGS if name != "hub"}
    servers["hub"] = Server("hub", hub_config(work, "ceiling"))
    size = max(200, int(opts.expected_rate * opts.seconds))
    runs: list[ingest.Run] = []
    try:
        for server in servers.values():
            server.start(work)
        for r in range(opts.rounds):
            for name in RUNGS[r % len(RUNGS) :] + RUNGS[: r % len(RUNGS)]:
                batch = pushes.make(size, f"c{r}{name}", pushes.CLEAN)
                run = ingest.measure(servers[name], r, "clean", batch, work, opts)
                runs.append(run)
                load = run.load
                echo(f"  round {r + 1}/{opts.rounds} {name:8} {load.rps:8.0f} req/s")
                if load.responses > 0.8 * size:
                    size = int(load.responses * 1.5)  # every run gets fresh pushes
    finally:
        for server in servers.values():
            server.stop()
    return {
        "options": vars(opts) | {"generator": runs[0].load.generator if runs else opts.generator},
        "rungs": summarise(runs),
        # the hub's clean pushes are all new: each ack is an event (and an order)
        "durability": {
            name: durability(db, [r for r in runs if r.server == name], opts.connections, table)
            for name, db, table in [
                *((name, db, "requests") for name, db in dbs.items()),
                ("hub", work / "ceiling.db", "events"),
            ]
        },
    }


def durability(db: Path, runs: list[ingest.Run], connections: int, table: str) -> dict[str, Any]:
    """Every acked push is a row of `table`; up to one per connection and run may be
    stored but never seen answered (in flight when the generator stopped)."""
    acked = sum(r.load.statuses.get(200, 0) for r in runs)
    with sqlite3.connect(db) as conn:
        stored = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    slack = connections * len(runs)
    return {"acked_200": acked, "stored": stored, "ok": acked <= stored <= acked + slack}


def summarise(runs: list[ingest.Run]) -> dict[str, dict[str, Any]]:
    bare = {run.round: run.load.rps for run in runs if run.server == "bare"}
    out = {}
    for name in RUNGS:
        mine = [r for r in runs if r.server == name]
        ratios = [r.load.rps / bare[r.round] for r in mine if bare.get(r.round)]
        out[name] = {
            "rps_median": round(statistics.median(r.load.rps for r in mine), 1),
            "ratio_median": round(statistics.median(ratios), 3) if ratios else None,
            "ratios": [round(x, 3) for x in ratios],
            "cpu_us_per_request": round(
                statistics.median(1e6 * r.server_cpu / max(1, r.load.responses) for r in mine), 1
            ),
            "cpu_us_per_request_by_process": ingest.cpu_by_process(mine),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ceiling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every rung (5)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per run (5)")
    parser.add_argument("--connections", type=int, default=64, help="closed-loop load (64)")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/orderhook-ceiling"),
        help="databases and logs (its databases are replaced each run)",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    opts = ingest.Options(
        rounds=args.rounds,
        seconds=args.seconds,
        connections=args.connections,
        generator="wrk" if wrk.available() else "python",
    )
    report.emit(run(args.work, opts), args.out)


if __name__ == "__main__":
    main()
