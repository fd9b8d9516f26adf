"""`python -m bench`: run every benchmark, print a table, write the figures as JSON.

\b
Examples:
  make bench                                  # installs wrk and py-spy, then this
  python -m bench                             # the full run (about 10 minutes)
  python -m bench --no-ceiling --aged-scale 0 # about 6 minutes
  python -m bench --smoke --out /tmp/r.json   # a few hundred requests, seconds
  python -m bench --rounds 9 --seconds 8      # more rounds on a noisy machine
  python -m bench --generator python          # without wrk
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bench import (
    aged,
    ceiling,
    ingest,
    latency,
    machine,
    profile,
    replay,
    report,
    soak,
    storage,
    writer,
    wrk,
)

HERE = Path(__file__).resolve().parent


@click.command(help=__doc__)
@click.option("--smoke", is_flag=True, help="Tiny run (seconds) that only checks it all works.")
@click.option("--rounds", type=int, default=5, show_default=True, help="Ingest rounds.")
@click.option("--seconds", type=float, default=5.0, show_default=True, help="Seconds per run.")
@click.option("--connections", type=int, default=64, show_default=True, help="Closed-loop load.")
@click.option(
    "--generator",
    type=click.Choice(["auto", "wrk", "python"]),
    default="auto",
    show_default=True,
    help="Closed-loop load generator (auto: wrk when installed).",
)
@click.option("--rates", default="500,2000", show_default=True, help="Open-loop rates, pushes/s.")
@click.option("--latency-seconds", type=float, default=10.0, show_default=True)
@click.option(
    "--soak-seconds",
    type=float,
    default=30.0,
    show_default=True,
    help="Steady 1,000 paid orders/s into one hub, CPU and memory per window (0: skip).",
)
@click.option(
    "--aged-scale",
    type=float,
    default=0.25,
    show_default=True,
    help="Size of the month-old database whose reads are timed (1.0: 2M requests; 0: skip).",
)
@click.option(
    "--replay",
    "replay_count",
    type=int,
    default=5000,
    show_default=True,
    help="Recordings `orderhook replay` sends (with 1, then 8 in flight).",
)
@click.option(
    "--ceiling/--no-ceiling",
    "with_ceiling",
    default=True,
    show_default=True,
    help="Also run the ceiling's rungs (bench/ceiling.py): what a server doing less reaches.",
)
@click.option(
    "--profile/--no-profile",
    "with_profile",
    default=True,
    show_default=True,
    help="Sample the hub with py-spy under load.",
)
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where servers keep databases and logs (default bench/out/<time>).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=HERE / "results.json",
    show_default=True,
    help="JSON results file.",
)
def main(
    smoke: bool,
    rounds: int,
    seconds: float,
    connections: int,
    generator: str,
    rates: str,
    latency_seconds: float,
    soak_seconds: float,
    aged_scale: float,
    replay_count: int,
    with_ceiling: bool,
    with_profile: bool,
    work: Path | None,
    out: Path,
) -> None:
    if generator == "auto":
        generator = "wrk" if wrk.available() else "python"
    elif generator == "wrk" and not wrk.available():
        raise click.UsageError("wrk is not installed (apt-get install wrk), use --generator python")
    opts = ingest.Options(
        rounds=rounds, seconds=seconds, connections=connections, generator=generator
    )
    rate_list = [int(r) for r in rates.split(",") if r.strip()]
    soak_rate, soak_window = 1000, 5.0
    writer_pushes, writer_rounds = 3000, 5
    if smoke:
        opts = replace(opts, rounds=1, seconds=1.0, connections=8, expected_rate=1000)
        rate_list, latency_seconds, replay_count = [50], 2.0, 100
        soak_rate, soak_seconds, soak_window = 50, min(soak_seconds, 2.0), 0.5
        writer_pushes, writer_rounds = 200, 1
        aged_scale = min(aged_scale, 0.0001)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = (work or HERE / "out" / stamp).resolve()
    work.mkdir(parents=True, exist_ok=True)

    def echo(text: str) -> None:
        click.echo(text)
        sys.stdout.flush()

    started = time.monotonic()
    results: dict[str, Any] = {"started_at": stamp, "smoke": smoke}
    results["machine"] = machine.describe(work)
    echo(
        f"ingest: {opts.rounds} rounds x 3 runs of {opts.seconds:g} s ({generator}, "
        f"{opts.connections} connections)"
    )
    results["ingest"] = ingest.run(work / "ingest", opts, echo)
    if with_ceiling:
        echo(f"ceiling: {', '.join(ceiling.RUNGS)}, {opts.rounds} rounds of {opts.seconds:g} s")
        results["ceiling"] = ceiling.run(work / "ceiling", opts, echo)
    echo("storage: measuring the ingest database")
    results["storage"] = storage.measure(Path(results["ingest"]["db"]), results["ingest"]["io"])
    echo(f"latency: open loop at {', '.join(map(str, rate_list))} pushes/s")
    results["latency"] = latency.run(work / "latency", rate_list, latency_seconds, echo)
    if soak_seconds > 0:
        echo(f"soak: {soak_rate} paid orders/s for {soak_seconds:g} s into one hub")
        results["soak"] = soak.run(soak_rate, soak_seconds, soak_window, work / "soak")
    if aged_scale > 0:
        echo(f"aged: the hub's reads on a month-old database (scale {aged_scale:g})")
        results["aged"] = aged.run(work / "aged", aged_scale, rounds=3)
    echo("replay:")
    results["replay"] = replay.run(
        work / "replay", Path(results["ingest"]["db"]), replay_count, echo
    )
    echo("writer: the ingest writer's work alone (python -m bench.writer)")
    results["writer"] = writer.run(work / "writer", writer_pushes, writer_rounds, echo)
    if with_profile and not smoke:
        echo("profile: py-spy on the hub under load")
        results["profile"] = profile.record(work / "profile", opts, echo)
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = round(time.monotonic() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    echo("")
    echo(report.table(results))
    echo(f"\nwrote {out} (work files in {work})")


if __name__ == "__main__":
    main()
