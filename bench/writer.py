"""Ingest writer benchmark: CPU per push of exactly what the ingest writer process does,
without HTTP, on the bench's own signed pushes.

    .venv/bin/python -m bench.writer                        # clean and mixed, 3 rounds
    .venv/bin/python -m bench.writer --pushes 10000 --rounds 5 --out /tmp/w.json
    .venv/bin/python -m bench.writer --scenario clean --profile /tmp/writer.prof
    .venv/bin/python -m bench.writer --against /tmp/base --rounds 9   # A/B, alternating

Each push (bench/pushes.py, signed with the official package) becomes the tuple the event
loop captures (`hub.ingest.Received`: the headers lower-cased as uvicorn hands them).
They go to the writer's own code as its socket would bring them: frames of `--batch`
requests, `marshal`-encoded with the settings pickled in the first one, then
`Judge.frame` (admit: connector, shop, verify, parse, the record, `to_wire`), the write
turn and `Batches.commit` (dedupe, rows, INSERTs, the handling-time update, COMMIT) on a
fresh database with synchronous=FULL, then `Judge.answer` and the marshalled answers.

Figures are process CPU time (user + system: robust on a shared machine, where wall
time is not) per push, split into admit / rows+SQL (with the answers) / COMMIT, plus
wall time per push. Each round is a fresh database; the figure is the median over
rounds. `--against DIR` compares two trees of the code (DIR: another checkout with this
file in it): each round runs this harness once in each, in a fresh interpreter, in an
order that alternates (the cheapest of 3 runs in that interpreter: other people's work
only adds CPU time), and reports both medians and the median of the paired ratios.
Every outcome is checked against what the push is (new: accepted, redelivery:
duplicate, wrong secret: rejected bad_signature) and the run fails when one is not.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import json
import marshal
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench import pushes
from bench.servers import hub_config
from hub import settings as settings_mod
from hub.runtime import ADMIT
from hub.store import Store, ingest_process
from hub.store.connection import connect
from hub.store.ingest_process import Batches, Judge
from hub.store.turn import Turn

HERE = Path(__file__).resolve().parent
SCENARIOS = {"clean": pushes.CLEAN, "mixed": pushes.MIXED}
EXPECTED = {
    "new": ("accepted", None),
    "duplicate": ("duplicate", "duplicate"),
    "bad_signature": ("rejected", "bad_signature"),
}
PEER = "127.0.0.1:50000"
_prefixes = itertools.count()


def received(raw: bytes, received_us: int) -> tuple[Any, ...]:
    """A rendered push as the event loop hands it to the writer (`hub.ingest.Received`)."""
    method, target, pairs, body = pushes.split(raw)
    path, _, query = target.partition("?")
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]
    return (received_us, method, path, query.encode(), headers, body, PEER, False)


class TimedConnection:
    """The writer's connection, with the CPU its COMMITs take set aside."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.commit_cpu = 0.0
        self.commit_wall = 0.0

    def execute(self, sql: str, *args: Any) -> Any:
        if sql != "COMMIT":
            return self._conn.execute(sql, *args)
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            return self._conn.execute(sql)
        finally:
            self.commit_cpu += time.process_time() - c0
            self.commit_wall += time.perf_counter() - w0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def frames(batch: list[pushes.Push], context: bytes, size: int) -> Iterator[bytes]:
    """The frames `IngestWriter` would send: (settings when new, [(seq, submitted,
    received), ...]), one per `size` requests."""
    for at in range(0, len(batch), size):
        now_us = time.time_ns() // 1000
        submitted = time.monotonic()
        items = [
            (at + i, submitted, received(p.raw, now_us))
            for i, p in enumerate(batch[at : at + size])
        ]
        yield marshal.dumps((context if at == 0 else None, items))


def once(
    batch: list[pushes.Push], size: int, work: Path, profile: cProfile.Profile | None = None
) -> dict[str, Any]:
    """One pass of `batch` through a fresh writer and database."""
    config = hub_config(work, "writer")
    settings = settings_mod.load(config, env={})
    db = settings.db
    Store(db).migrate()
    conn = TimedConnection(connect(db))
    turn = Turn(db)
    judge = Judge(ADMIT)
    batches = Batches(conn)  # type: ignore[arg-type]
    context = pickle.dumps(settings, pickle.HIGHEST_PROTOCOL)
    data = list(frames(batch, context, size))  # built before the clock starts
    outcomes: list[tuple[Any, ...]] = []
    admit = rows = 0.0
    ingest_process.settle()  # as `serve` does before it says ready
    if profile is not None:
        profile.enable()
    w0 = time.perf_counter()
    try:
        for frame in data:
            answers, judging, writing = _handle(frame, judge, turn, batches)
            c0 = time.process_time()
            ingest_process.sweep()  # as `serve` does after each chunk
            admit += judging
            rows += writing + time.process_time() - c0
            outcomes.extend(answers)
        with turn.ingest():
            batches.flush_later()  # the last batch's handling times, as an idle writer does
    finally:
        wall = time.perf_counter() - w0
        if profile is not None:
            profile.disable()
        gc.unfreeze()  # `settle` is the writer process's; this one goes on
        gc.enable()
        conn.close()
        turn.close()
    rows -= conn.commit_cpu
    n = len(batch)
    _check(batch, outcomes)
    return {
        "pushes": n,
        "cpu_us_per_push": round((admit + rows + conn.commit_cpu) * 1e6 / n, 1),
        "admit_us": round(admit * 1e6 / n, 1),
        "rows_sql_us": round(rows * 1e6 / n, 1),
        "commit_us": round(conn.commit_cpu * 1e6 / n, 1),
        "wall_us_per_push": round(wall * 1e6 / n, 1),
        "commit_wall_us": round(conn.commit_wall * 1e6 / n, 1),
        "outcomes": dict(Counter(f"{a[2]}:{a[3] or ''}" for a in outcomes)),
    }


def _handle(
    frame: bytes, judge: Judge, turn: Turn, batches: Batches
) -> tuple[list[tuple[Any, ...]], float, float]:
    """`ingest_process.handle` for one frame, timed: (answers, admit CPU, the rest)."""
    c0 = time.process_time()
    jobs = judge.frame(frame)
    c1 = time.process_time()
    answers, _ = ingest_process.write(jobs, turn, batches, judge)
    marshal.dumps((answers, len(jobs), 0.0, 0))
    return answers, c1 - c0, time.process_time() - c1


def _check(batch: list[pushes.Push], outcomes: list[tuple[Any, ...]]) -> None:
    for push, answer in zip(batch, outcomes, strict=True):
        if (answer[2], answer[3]) != EXPECTED[push.kind]:
            raise RuntimeError(f"{push.kind} push {push.msg_id} came out {answer[2:5]}")


def run_scenario(
    scenario: str, n: int, size: int, rounds: int, work: Path, profile: cProfile.Profile | None
) -> dict[str, Any]:
    batch = pushes.make(n, f"w{next(_prefixes)}{time.time_ns()}", SCENARIOS[scenario])
    runs = []
    for r in range(rounds):
        runs.append(once(batch, size, work / f"{scenario}-{r}", profile))
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    return {
        "scenario": scenario,
        "pushes": n,
        "batch": size,
        "sent": pushes.kinds(batch),
        **{k: round(statistics.median(run[k] for run in runs), 1) for k in keys},
        "cpu_us_per_push_rounds": [run["cpu_us_per_push"] for run in runs],
        "cheapest": {k: v for k, v in min(runs, key=_cpu).items() if k in keys},
        "outcomes": runs[0]["outcomes"],
    }


def _cpu(run: dict[str, Any]) -> float:
    return float(run["cpu_us_per_push"])


def run(
    work: Path,
    n: int,
    rounds: int,
    echo: Callable[[str], None],
    *,
    size: int = 64,
    scenarios: tuple[str, ...] = ("clean", "mixed"),
    profile: cProfile.Profile | None = None,
) -> dict[str, Any]:
    """Every scenario, `rounds` fresh databases each (the `python -m bench` entry)."""
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for scenario in scenarios:
        x = run_scenario(scenario, n, size, rounds, work, profile)
        results.append(x)
        echo(
            f"  {scenario:6} {x['cpu_us_per_push']:6.1f} µs CPU per push: admit "
            f"{x['admit_us']:.1f}, rows+SQL {x['rows_sql_us']:.1f}, COMMIT {x['commit_us']:.1f}"
            f" (wall {x['wall_us_per_push']:.1f} µs; {n} pushes x {rounds} rounds, batches of "
            f"{size})"
        )
    return {
        "method": "Judge.frame + Batches.commit on received tuples, synchronous=FULL, "
        "process CPU time",
        "scenarios": results,
    }


# runs per interpreter in a comparison; its cheapest counts (on a shared machine other
# work only ever adds CPU time: a run that was not slowed is the closer figure)
INNER = 3
FIGURES = ("cpu_us_per_push", "admit_us", "rows_sql_us", "commit_us", "wall_us_per_push")


def against(
    other: Path, n: int, size: int, rounds: int, scenario: str, echo: Callable[[str], None]
) -> dict[str, Any]:
    """Rounds alternating between this tree and `other`, one fresh interpreter per run."""
    trees = {"this": HERE.parent, "other": other.resolve()}
    runs: dict[str, list[dict[str, Any]]] = {"this": [], "other": []}
    args = ["-m", "bench.writer", "--pushes", str(n), "--batch", str(size)]
    args += ["--rounds", str(INNER), "--scenario", scenario]
    for r in range(rounds):
        for side in ("this", "other") if r % 2 == 0 else ("other", "this"):
            done = subprocess.run(
                [sys.executable, *args],
                cwd=trees[side],
                env={**os.environ, "PYTHONPATH": str(trees[side])},
                capture_output=True,
                text=True,
                check=True,
            )
            runs[side].append(json.loads(done.stdout)["scenarios"][0]["cheapest"])
        echo(
            f"  round {r + 1}/{rounds}: this {runs['this'][-1]['cpu_us_per_push']:.1f}, "
            f"other {runs['other'][-1]['cpu_us_per_push']:.1f} µs CPU per push"
        )
    medians = {
        side: {k: round(statistics.median(run[k] for run in runs[side]), 1) for k in FIGURES}
        for side in runs
    }
    ratios = [
        round(a["cpu_us_per_push"] / b["cpu_us_per_push"], 3)
        for a, b in zip(runs["this"], runs["other"], strict=True)
    ]
    return {
        "scenario": scenario,
        "trees": {side: str(path) for side, path in trees.items()},
        "pushes": n,
        "batch": size,
        "rounds": rounds,
        "median": medians,
        "cpu_ratio_this_over_other_median": round(statistics.median(ratios), 3),
        "cpu_ratios": ratios,
        "cpu_us_per_push_rounds": {
            side: [run["cpu_us_per_push"] for run in runs[side]] for side in runs
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.epilog = "examples:\n" + __doc__.split("\n\n")[1]
    parser.add_argument("--pushes", type=int, default=3000, help="pushes per scenario")
    parser.add_argument("--batch", type=int, default=64, help="requests per frame and commit")
    parser.add_argument("--rounds", type=int, default=3, help="fresh databases; median counts")
    parser.add_argument("--scenario", choices=[*SCENARIOS, "both"], default="both")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the rounds here")
    parser.add_argument("--work", type=Path, help="database directory (default: a temporary one)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--against", type=Path, help="another tree of the code: alternate rounds, compare"
    )
    args = parser.parse_args()
    scenarios = tuple(SCENARIOS) if args.scenario == "both" else (args.scenario,)
    profile = cProfile.Profile() if args.profile else None

    def echo(text: str) -> None:
        print(text, file=sys.stderr)

    if args.against is not None:
        runs = [
            against(args.against, args.pushes, args.batch, args.rounds, scenario, echo)
            for scenario in scenarios
        ]
        result = {"method": "alternating rounds, fresh interpreters", "comparisons": runs}
        for x in runs:
            echo(
                f"{x['scenario']}: this {x['median']['this']} / other {x['median']['other']}; "
                f"CPU ratio this/other {x['cpu_ratio_this_over_other_median']} (median of "
                f"{x['rounds']} paired rounds: {x['cpu_ratios']})"
            )
    else:
        result = measure(args, scenarios, profile, echo)
    text = json.dumps({"benchmark": "writer", **result}, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


def measure(
    args: argparse.Namespace,
    scenarios: tuple[str, ...],
    profile: cProfile.Profile | None,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    (HERE / "out").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="writer-", dir=HERE / "out") as tmp:
        work = args.work or Path(tmp)
        result = run(
            work,
            args.pushes,
            args.rounds,
            echo,
            size=args.batch,
            scenarios=scenarios,
            profile=profile,
        )
    if profile is not None:
        profile.dump_stats(args.profile)
    return result


if __name__ == "__main__":
    main()
