"""Replay speed: requests per second `orderhook replay` sends to a local endpoint.

The command itself, as an integrator runs it: `orderhook replay --db INGEST_DB --limit N
--to BARE_URL --concurrency C --json`, on the ingest run's recordings, to a bare
Starlette endpoint on 127.0.0.1 (so the endpoint is not what limits it). Each answer is
compared with the recorded one and stored with the replay run, as always. Two figures
per concurrency: the sending rate, from the run's first to its last `sent_at` (what the
command sustains), and the whole command's wall time (start-up and selection included).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import dbread
from bench.servers import ROOT, Server
from hub.model import parse_iso

CONCURRENCY = (1, 8)


def _sent(conn: Any, run_id: int) -> list[tuple[str, int | None]]:
    return conn.execute(
        "SELECT sent_at, status FROM replay_results WHERE run_id = ? ORDER BY sent_at", (run_id,)
    ).fetchall()


def replay_once(db: Path, url: str, limit: int, concurrency: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "hub.cli", "replay", "--db", str(db), "--limit", str(limit)]
    cmd += ["--to", url, "--concurrency", str(concurrency), "--json"]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: some answers differ, still a complete run
        raise RuntimeError(f"orderhook replay exited {done.returncode}: {done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    sent = dbread.read(db, _sent, summary["run_id"])
    span = parse_iso(sent[-1][0]).timestamp() - parse_iso(sent[0][0]).timestamp() if sent else 0
    return {
        "concurrency": concurrency,
        "run_id": summary["run_id"],
        "requests": summary["sent"],
        "same_answer": summary["same"],
        "statuses": dict(Counter(str(status) for _, status in sent)),
        "sending_seconds": round(span, 3),
        "rps": round((len(sent) - 1) / span, 1) if span > 0 else None,
        "command_seconds": round(wall, 3),
        "command_rps": round(summary["sent"] / wall, 1),
    }


def run(work: Path, db: Path, limit: int, echo: Callable[[str], None]) -> dict[str, Any]:
    if not db.exists():
        return {"skipped": "no recorded requests to replay"}
    bare = Server("bare").start(work)
    try:
        runs = []
        for concurrency in CONCURRENCY:
            result = replay_once(db, bare.url, limit, concurrency)
            runs.append(result)
            echo(
                f"  orderhook replay --concurrency {concurrency}: {result['rps'] or 0:8.0f} req/s "
                f"sending, {result['command_rps']:6.0f} req/s for the whole command "
                f"({result['requests']} recordings)"
            )
    finally:
        bare.stop()
    return {
        "method": "orderhook replay --db INGEST_DB --limit N --to BARE --concurrency C --json",
        "target": "bare Starlette endpoint on 127.0.0.1",
        "runs": runs,
    }
