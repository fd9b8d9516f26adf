"""Soak benchmark: a steady stream of new paid orders into one hub with dispatch, and
what each of its processes spends per push and holds in memory, window by window.

    .venv/bin/python -m bench.soak                            # 1,000/s for 120 s
    .venv/bin/python -m bench.soak --rate 500 --seconds 600 --out /tmp/soak.json

Every other bench starts from an empty hub; a sale night does not. Each push here makes
an order and a task that nobody closes, so by the end the hub holds `rate x seconds`
open tasks, and a cost that grows with them (a query that walks the open tasks, a
cache that is never trimmed) shows as a rise from the first window to the last: CPU per
push per process (from /proc, so a shared machine's other work does not count) and
resident memory per process. The pushes come from the open-loop generator (bench/
loadgen.py), each at its scheduled time; acks are counted and timed. Prints one JSON
document, and a line per window on stderr as it goes. `python -m bench` runs 30 s of it
(`--soak-seconds`) and shows the first and the last window.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import itertools
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import loadgen, pushes, report
from bench.servers import Server, hub_config


def run(rate: int, seconds: float, window: float, work: Path) -> dict[str, Any]:
    hub = Server("hub", hub_config(work, "soak", dispatch=True)).start(work)
    batch = pushes.make(max(1, int(rate * seconds)), "soak", kind="order.paid")
    samples: list[tuple[float, dict[str, float], dict[str, float]]] = []
    done = threading.Event()

    def sample() -> None:
        """A sample now, then one each window, and a last one when the run ends."""
        while True:
            ended = done.wait(window) if samples else False
            samples.append((time.time(), hub.cpu_by_process(), hub.rss_by_process()))
            at = samples[-1][0] - samples[0][0]
            print(f"soak: {at:.0f} s, memory {samples[-1][2]} MB", file=sys.stderr, flush=True)
            if ended:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        sampler.start()
        outcomes = loadgen.run_on_uvloop(
            functools.partial(loadgen.open_loop, hub.url, [p.raw for p in batch], rate=rate)
        )
        done.set()
        sampler.join()
    finally:
        done.set()
        hub.stop()
    due = sorted(o.scheduled for o in outcomes)
    start = samples[0][0]
    # a window much shorter than the others (the last sample can come right after the
    # one before it, as the run ends) has too few pushes for /proc's 10 ms ticks
    windows = [
        _window(start, a, b, due)
        for a, b in itertools.pairwise(samples)
        if b[0] - a[0] >= window / 2
    ]
    acked = [o for o in outcomes if o.status == 200]
    return {
        "benchmark": "soak",
        "rate": rate,
        "seconds": seconds,
        "pushes": len(batch),
        "acked": len(acked),
        "ack_ms": {
            k: round(v * 1000, 2)
            for k, v in loadgen.percentiles([o.latency for o in acked if o.latency]).items()
        },
        "windows": [w for w in windows if w is not None],
    }


def _window(
    start: float,
    a: tuple[float, dict[str, float], dict[str, float]],
    b: tuple[float, dict[str, float], dict[str, float]],
    due: list[float],
) -> dict[str, Any] | None:
    """CPU per push of each process between two samples (the pushes due in that time),
    and each process's memory at the second; `at_s`: seconds since `start`. None for a
    window no push was due in (the last sample can fall right after the run)."""
    (t0, cpu0, _), (t1, cpu1, rss) = a, b
    pushed = bisect.bisect_right(due, t1) - bisect.bisect_right(due, t0)
    if not pushed:
        return None
    return {
        "at_s": round(t1 - start, 1),
        "pushes": pushed,
        "cpu_us_per_push": {
            k: round((v - cpu0.get(k, 0.0)) * 1e6 / pushed) for k, v in cpu1.items()
        },
        "rss_mb": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="pushes per second")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--window", type=float, default=10.0, help="seconds per sample")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.rate, args.seconds, args.window, Path(tmp))
    report.emit(result, args.out)


if __name__ == "__main__":
    main()
