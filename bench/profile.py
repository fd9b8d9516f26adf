"""Where the hub's time goes under load: py-spy samples the hub while wrk (or the Python
generator) pushes at it, and the collapsed stacks are summarised here by stage.

py-spy runs with --nonblocking (it does not pause the hub to sample), so the figures of
the profiled run are close to an unprofiled one. Only samples of running threads count
(py-spy leaves out idle ones), so the shares say where CPU goes, not where time waits.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import ingest, pushes
from bench.servers import Server, hub_config

# a sample goes to the stage of its innermost frame that matches a rule (stdlib frames
# such as json or hmac are passed over, so they count for whoever called them)
STAGES = (  # the hub's own process; its workers are told apart by process first
    ("hub/store/ingest_process", "handing jobs to the worker processes"),
    ("hub/store/stage_process", "handing jobs to the worker processes"),
    ("hub/store/child", "handing jobs to the worker processes"),
    ("hub/store/", "writer thread: SQL"),
    ("hub/delivery/", "delivery stages (writer thread)"),
    ("connectors/", "verify + parse"),
    ("hub/ingest.py", "ingest handler"),
    ("hub/model.py", "canonical model"),
    ("prometheus_client", "metrics"),
    ("uvicorn", "HTTP server (uvicorn, httptools, uvloop)"),
    ("asyncio", "HTTP server (uvicorn, httptools, uvloop)"),
    ("starlette", "HTTP server (uvicorn, httptools, uvloop)"),
)
OURS = ("hub/", "connectors/")
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?):(?P<line>\d+)\)$")


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


def record(work: Path, opts: ingest.Options, echo: Callable[[str], None]) -> dict[str, Any]:
    spy = py_spy()
    if spy is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    work.mkdir(parents=True, exist_ok=True)
    hub = Server("hub", hub_config(work, "profile")).start(work)
    raw = work / "profile.txt"
    try:
        batch = pushes.make(max(200, int(opts.expected_rate * opts.seconds)), "prof")
        duration = max(1, round(opts.seconds))
        sampler = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(hub.pid),
                "--duration",
                str(duration + 1),
                "--rate",
                "250",
                "--nonblocking",
                "--threads",
                "--subprocesses",  # the ingest writer process
                "--format",
                "raw",
                "--output",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        load = ingest.drive(hub, batch, work, opts)
        _, err = sampler.communicate(timeout=duration + 60)
    finally:
        hub.stop()
    if sampler.returncode != 0 or not raw.exists():
        return {"skipped": f"py-spy failed: {err.decode(errors='replace').strip()[-300:]}"}
    summary = summarise(raw.read_text(encoding="utf-8"))
    summary["rps_while_profiled"] = round(load.rps, 1)
    summary["raw"] = str(raw)
    for stage, share in summary["stages"].items():
        echo(f"  {share * 100:5.1f}%  {stage}")
    return summary


def _frames(stack: str) -> tuple[str, list[tuple[str, str]]]:
    """(where, frames); with --subprocesses py-spy puts `process PID:"cmdline"` parts
    (the parent's, then the child's) before the thread."""
    parts = stack.split(";")
    lead = 0
    while lead < len(parts) - 1 and parts[lead].startswith("process "):
        lead += 1
    where = ";".join(parts[: lead + 1])
    frames = []
    for text in parts[lead + 1 :]:
        m = FRAME.match(text)
        if m:
            path = m["file"]
            for marker in ("site-packages/", "wt-bench/", "/work/"):
                path = path.split(marker)[-1]
            frames.append((m["func"], path))
    return where, frames


def _where(where: str) -> str:
    if "hub.store.ingest_process" in where:
        return "ingest writer process"
    if "hub.store.stage_process" in where:
        return "stage runner process"
    return "event loop (main thread)" if "MainThread" in where else "writer thread and others"


def _stage(place: str, frames: list[tuple[str, str]]) -> str:
    if place == "ingest writer process":
        if frames and frames[-1][1].endswith("hub/store/connection.py"):
            # nothing deeper in Python than `transaction`: BEGIN/COMMIT, i.e. writing
            # the WAL and its fsync
            return "ingest writer process: COMMIT (WAL write + fsync)"
        if any(p.startswith("connectors/") or p.endswith("hub/ingest.py") for _, p in frames):
            return "ingest writer process: verify + parse (admit)"
        return "ingest writer process: rows and SQL"
    if place == "stage runner process":  # it runs only the post-commit dispatch stage
        return "dispatch stage (stage runner process)"
    for _, path in reversed(frames):
        for key, name in STAGES:
            if key in path:
                return name
    return "other"


def summarise(text: str, top: int = 15) -> dict[str, Any]:
    stages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        thread, frames = _frames(stack)
        total += n
        place = _where(thread)
        threads[place] += n
        ours = [f for f in frames if f[1].startswith(OURS)]
        stages[_stage(place, frames)] += n
        for func, path in {(f, p) for f, p in ours}:
            functions[f"{path}:{func}"] += n
    share = {k: round(v / total, 3) for k, v in stages.most_common()} if total else {}
    return {
        "samples": total,
        "threads": {k: round(v / total, 3) for k, v in threads.items()} if total else {},
        "stages": share,
        "functions_inclusive": {k: round(v / total, 3) for k, v in functions.most_common(top)},
    }
