"""Ingest throughput: the hub against the framework's own ceiling, round after round.

Each round runs, in an order that rotates from round to round:
- hub/clean: fresh signed pushes, all new;
- bare/clean: the same kind of pushes to a Starlette endpoint that only reads the body;
- hub/mixed: 10% redeliveries and 5% bad signatures.
The figure is the median over rounds of the paired ratio hub/bare (machines are shared
and noisy; a ratio inside one round cancels most of the noise). Afterwards the hub is
stopped and its database counted: every 200 the load generator saw must be a recorded
request answered 200.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import dbread, loadgen, pushes, wrk
from bench.servers import Server, hub_config
from hub.store import stats_sql

SCENARIOS = {"clean": pushes.CLEAN, "mixed": pushes.MIXED}


@dataclass(frozen=True)
class Options:
    rounds: int = 5
    seconds: float = 5.0
    connections: int = 64
    generator: str = "wrk"  # wrk | python
    expected_rate: int = 6000  # pushes generated per second of a run, grown if exceeded


@dataclass
class Run:
    round: int
    server: str
    scenario: str
    load: wrk.LoadResult
    server_cpu: float
    sent_kinds: dict[str, int]
    cpu_by_process: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        load = self.load
        return {
            "round": self.round,
            "server": self.server,
            "scenario": self.scenario,
            "rps": round(load.rps, 1),
            "responses": load.responses,
            "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
            "errors": {k: v for k, v in load.errors.items() if v},
            "latency_ms": {k: round(v, 2) for k, v in load.latency_ms.items()},
            "seconds": round(load.seconds, 3),
            "server_cpu_us_per_request": round(1e6 * self.server_cpu / max(1, load.responses), 1),
            "server_cpu_us_per_request_by_process": {
                name: round(1e6 * seconds / max(1, load.responses), 1)
                for name, seconds in self.cpu_by_process.items()
            },
            "generator_cpu_share": round(load.generator_cpu / load.seconds, 3),
            "pushes_ran_out": load.wrapped,
        }


def drive(server: Server, batch: list[pushes.Push], work: Path, opts: Options) -> wrk.LoadResult:
    raws = [p.raw for p in batch]
    if opts.generator == "wrk":
        prefix = work / "requests"
        pushes.write_for_wrk(batch, prefix, threads=1)
        return wrk.run(server.url, prefix, seconds=opts.seconds, connections=opts.connections)
    return loadgen.run_on_uvloop(
        lambda: loadgen.closed_loop(
            server.url, raws, seconds=opts.seconds, connections=opts.connections
        )
    )


def measure(
    server: Server, round_: int, scenario: str, batch: list[pushes.Push], work: Path, opts: Options
) -> Run:
    """One run: `batch` driven at `server`, with the CPU each of its processes spent."""
    before = server.cpu_by_process()
    load = drive(server, batch, work, opts)
    cpu = {p: s - before.get(p, 0.0) for p, s in server.cpu_by_process().items()}
    return Run(round_, server.kind, scenario, load, sum(cpu.values()), pushes.kinds(batch), cpu)


def run(work: Path, opts: Options, echo: Callable[[str], None]) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    hub = Server("hub", hub_config(work, "ingest")).start(work)
    bare = Server("bare").start(work)
    servers = {"hub": hub, "bare": bare}
    order = [("hub", "clean"), ("bare", "clean"), ("hub", "mixed")]
    size = max(200, int(opts.expected_rate * opts.seconds))
    runs: list[Run] = []
    io_start = hub.io()
    try:
        for r in range(opts.rounds):
            turn = order[r % len(order) :] + order[: r % len(order)]
            for name, scenario in turn:
                batch = pushes.make(size, f"r{r}{name[0]}{scenario[0]}", SCENARIOS[scenario])
                run = measure(servers[name], r, scenario, batch, work, opts)
                runs.append(run)
                load = run.load
                echo(
                    f"  round {r + 1}/{opts.rounds} {name:4} {scenario:5} "
                    f"{load.rps:8.0f} req/s  p99 {load.latency_ms['p99']:6.1f} ms"
                    + (
                        "  (ran out of fresh pushes: repeats)"
                        if load.wrapped and name == "hub"
                        else ""
                    )
                )
                if name == "hub" and load.responses > 0.8 * size:
                    size = int(load.responses * 1.5)  # the next hub run gets enough fresh ones
        io_end = hub.io()
    finally:
        hub.stop()
        bare.stop()
    db = work / "ingest.db"
    return {
        "options": vars(opts) | {"generator": runs[0].load.generator if runs else opts.generator},
        "runs": [run.as_json() for run in runs],
        "summary": summarise(runs),
        "durability": durability(db, runs, opts.connections),
        "io": {k: io_end.get(k, 0) - io_start.get(k, 0) for k in ("wchar", "write_bytes")},
        "db": str(db),
    }


def summarise(runs: list[Run]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    bare = {run.round: run for run in runs if run.server == "bare"}
    for scenario in SCENARIOS:
        hub_runs = [r for r in runs if r.server == "hub" and r.scenario == scenario]
        ratios = [r.load.rps / bare[r.round].load.rps for r in hub_runs if bare[r.round].load.rps]
        out[scenario] = {
            "hub_rps_median": round(statistics.median(r.load.rps for r in hub_runs), 1),
            "ratio_median": round(statistics.median(ratios), 3) if ratios else None,
            "ratios": [round(x, 3) for x in ratios],
            "hub_cpu_us_per_request": round(
                statistics.median(1e6 * r.server_cpu / max(1, r.load.responses) for r in hub_runs),
                1,
            ),
            # where that CPU was spent: the event loop's process, the ingest writer, the
            # stage runner
            "hub_cpu_us_per_request_by_process": cpu_by_process(hub_runs),
        }
    bare_runs = list(bare.values())
    out["bare"] = {
        "rps_median": round(statistics.median(r.load.rps for r in bare_runs), 1),
        "cpu_us_per_request": round(
            statistics.median(1e6 * r.server_cpu / max(1, r.load.responses) for r in bare_runs), 1
        ),
        "generator_cpu_share_max": round(
            max(r.load.generator_cpu / r.load.seconds for r in bare_runs), 3
        ),
    }
    return out


def cpu_by_process(runs: list[Run]) -> dict[str, float]:
    """CPU per request of each of the server's processes, the median over `runs` (so the
    figures need not add up exactly to the median of the whole)."""
    return {
        process: round(
            statistics.median(
                1e6 * r.cpu_by_process.get(process, 0.0) / max(1, r.load.responses) for r in runs
            ),
            1,
        )
        for process in sorted({p for r in runs for p in r.cpu_by_process})
    }


def durability(db: Path, runs: list[Run], connections: int) -> dict[str, Any]:
    """Every acked push must be in the database. The generator stops with up to one
    request per connection in flight: those are recorded but never seen answered, so the
    database may hold up to `connections` more per run, never fewer."""
    seen: Counter[int] = Counter()
    hub_runs = [r for r in runs if r.server == "hub"]
    for run in hub_runs:
        seen.update(run.load.statuses)
    recorded = dbread.read(db, stats_sql.status_counts)
    totals = dbread.read(db, stats_sql.ingest_totals)
    slack = connections * len(hub_runs)
    acked, stored = seen.get(200, 0), recorded.get(200, 0)
    return {
        "acked_200": acked,
        "recorded_200": stored,
        "unanswered_in_flight": stored - acked,
        "in_flight_limit": slack,
        "statuses_seen": {str(k): v for k, v in sorted(seen.items())},
        "statuses_recorded": {str(k): v for k, v in sorted(recorded.items())},
        "events": totals["events"],
        "events_new_on_requests": totals["events_new"],
        "ok": acked <= stored <= acked + slack and totals["events"] == totals["events_new"],
    }
