"""The servers under test as child processes: start, wait until they answer, read their
CPU time and I/O from /proc, stop them cleanly (the hub drains its writer on SIGINT)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.pushes import BENCH_SECRET, SHOP
from hub.store.child import process_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent


# Operators who take every task (capacity far above a run's pushes), so every paid order
# is assigned as soon as dispatch sees it: push -> assignment without queueing for people
DISPATCH = """
[dispatch]
default_group = "general"
route_on = ["paid"]

[dispatch.groups.general]
""" + "".join(
    f'\n[dispatch.operators.bench{i}]\ngroups = ["general"]\ncapacity = 1000000\n' for i in range(4)
)


def hub_config(workdir: Path, name: str = "hub", *, dispatch: bool = False) -> Path:
    """A config with one Standard Webhooks shop on a fresh database in `workdir`, and
    with `dispatch` a group of operators that takes every paid order."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{name}.toml"
    path.write_text(
        f'[hub]\ndb = "{name}.db"\n\n[shops.{SHOP}]\nplatform = "standard"\n'
        f'secret = "{BENCH_SECRET}"\n' + (DISPATCH if dispatch else ""),
        encoding="utf-8",
    )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu(pid: int) -> float:
    # with its children that exited and were waited for; 0 once it exited meanwhile
    return process_cpu_seconds(pid, waited_children=True) or 0.0


def _rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kb = next((line.split()[1] for line in text.splitlines() if line.startswith("VmRSS:")), "0")
    return round(int(kb) / 1024, 1)


# the hub's workers, by the module their command line imports (hub/store/child.py)
WORKERS = {"hub.store.ingest_process": "ingest writer", "hub.store.stage_process": "stage runner"}


def _worker_name(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return "other"
    return next((name for module, name in WORKERS.items() if module in cmdline), "other")


def _children(pid: int) -> list[int]:
    try:
        found = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return found + [grand for child in found for grand in _children(child)]


@dataclass
class Server:
    kind: str  # one of bench.serve.KINDS
    config: Path | None = None
    db: Path | None = None  # the ceiling's rungs that record (durable, lean, lean-split)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, log_dir: Path) -> Server:
        cmd = [sys.executable, "-m", "bench.serve", self.kind, "--port", str(self.port)]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        if self.db is not None:
            cmd += ["--db", str(self.db)]
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / f"{self.kind}-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.kind} server did not start within 30 s (log: {self.log})")

    def cpu_by_process(self) -> dict[str, float]:
        """User + system CPU the server used so far, per process: the server's own (the
        event loop, with the hub's writer thread) and each worker by what it runs (a
        worker that exited counts with the server's own, as its children's times)."""
        return self._by_process(_cpu)

    def rss_by_process(self) -> dict[str, float]:
        """Resident memory in MB per process, named as in `cpu_by_process`."""
        return self._by_process(_rss_mb)

    def _by_process(self, read: Callable[[int], float]) -> dict[str, float]:
        """`read(pid)` for the server's own process and each worker, by what it runs."""
        out = {"event loop process": read(self.pid)}
        for pid in _children(self.pid):
            name = _worker_name(pid)
            out[name] = out.get(name, 0.0) + read(pid)
        return out

    def io(self) -> dict[str, int]:
        """/proc/<pid>/io of the server and its worker processes (the hub's ingest writer
        and stage runner do its writing): bytes written to storage (write_bytes) and
        via write() (wchar)."""
        total: dict[str, int] = {}
        for pid in [self.pid, *_children(self.pid)]:
            try:
                text = Path(f"/proc/{pid}/io").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                key, value = line.split(": ")
                total[key] = total.get(key, 0) + int(value)
        return total

    def stop(self) -> None:
        """SIGINT, as Ctrl-C: uvicorn closes, the hub's lifespan drains the writer."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
