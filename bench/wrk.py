"""Run wrk with bench/push.lua and read what it measured (the script's BENCH_JSON line).

wrk's own CPU time comes from wait4's rusage, so the report can show that the load
generator had room to spare (it is the bottleneck only if it ran near 100% of a core).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("push.lua")


def available() -> bool:
    return shutil.which("wrk") is not None


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one closed-loop load run measured (wrk or the Python fallback)."""

    generator: str
    seconds: float
    responses: int
    statuses: dict[int, int]
    errors: dict[str, int]
    latency_ms: dict[str, float]
    wrapped: bool  # the generator ran out of fresh pushes and repeated some
    generator_cpu: float  # seconds of CPU the generator itself used

    @property
    def rps(self) -> float:
        return self.responses / self.seconds if self.seconds else 0.0


def run(url: str, requests_prefix: Path, *, seconds: float, connections: int) -> LoadResult:
    """Closed loop: `connections` keep-alive connections, one thread, for `seconds`."""
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(requests_prefix),
    ]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    line = next((x for x in out.splitlines() if x.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({proc.returncode}) after {time.monotonic() - started:.1f}s:\n{out}\n{err}"
        )
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return LoadResult(
        generator="wrk",
        seconds=data["duration_us"] / 1e6,
        responses=data["requests"],
        statuses={int(k): v for k, v in data["statuses"].items()},
        errors=data["errors"],
        latency_ms={k: v / 1000 for k, v in data["latency_us"].items()},
        wrapped=data["wrapped"],
        generator_cpu=rusage.ru_utime + rusage.ru_stime,
    )
