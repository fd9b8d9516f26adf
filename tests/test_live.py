"""The whole path over real sockets: uvicorn on 127.0.0.1, and `orderhook serve` restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from hub.runtime import Hub
from hub.store import Store, queries
from tests.conftest import free_port
from tests.helpers import order_body, signed


def test_push_through_a_real_uvicorn(live_hub: tuple[str, Hub]) -> None:
    url, hub = live_hub
    body = order_body(order_id="12345678901234567890")
    with httpx.Client(base_url=url) as c:
        health = c.get("/healthz").json()
        assert health["ok"] is True
        assert health["workers"]["ingest writer"] == {"up": True, "restarts": 0}
        assert health["workers"]["stage runner"]["up"] is True
        r = c.post("/webhooks/standard/acme", content=body, headers=signed(body))
        assert r.status_code == 200 and r.json() == {"ok": True}
        assert c.get("/api/requests").status_code == 401  # everything else needs a token
    row = hub.store.run(queries.list_requests)[0]
    assert row["peer"].startswith("127.0.0.1:")
    assert row["outcome"] == "accepted"


def _serve(config: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(proc.communicate()[0].decode())


def test_everything_acked_survives_a_hard_kill_and_restart(write_config) -> None:  # type: ignore[no-untyped-def]
    config = write_config()
    port = free_port()
    proc = _serve(config, port)
    acked = []
    first = (order_body(order_id="0"), signed(order_body(order_id="0")))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            for i in range(30):
                body, headers = first if i == 0 else (order_body(order_id=str(i)), None)
                headers = headers or signed(body)
                if (
                    c.post("/webhooks/standard/acme", content=body, headers=headers).status_code
                    == 200
                ):
                    acked.append(str(i))
    finally:
        proc.send_signal(signal.SIGKILL)  # no graceful shutdown: only committed data survives
        proc.wait()
    assert len(acked) == 30
    store = Store(config.parent / "hub.db")
    assert store.run(queries.counts)["events"] == 30

    proc = _serve(config, port)  # the same database, after the crash
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            again = c.post("/webhooks/standard/acme", content=first[0], headers=first[1])
            assert again.status_code == 200  # a redelivery after restart is still a duplicate
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    counts = store.run(queries.counts)
    assert counts["events"] == 30 and counts["requests"] == 31
    # the post-commit stage caught up on everything committed before the kill
    assert counts["orders"] == 30


def test_ctrl_c_under_load_keeps_every_ack_and_stops_the_worker_processes(write_config) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C reaches the whole process group, the hub's workers (ingest writer, stage
    runner) included: they must keep working until the hub has drained, then exit."""
    config = write_config()
    port = free_port()
    proc = _serve(config, port)
    acked: list[int] = []
    failed: list[int] = []  # 5xx: the hub could not record a push
    stop = threading.Event()

    def pusher(n: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            i = 0
            while not stop.is_set():
                body = order_body(order_id=f"{n}-{i}")
                try:
                    r = c.post("/webhooks/standard/acme", content=body, headers=signed(body))
                except httpx.TransportError:
                    return  # the server closed: stopping
                if r.status_code == 200:
                    acked.append(1)
                elif r.status_code >= 500:
                    failed.append(r.status_code)
                i += 1

    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(4)]
    try:
        # the ingest writer and the stage runner
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 2
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        stop.set()
        for t in threads:
            if t.is_alive():
                t.join(30)
        if proc.poll() is None:  # a failed check must not leave a server running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode is not None and len(acked) >= 100
    assert failed == []  # nothing in flight was refused while the hub drained
    assert not [c for c in children if Path(f"/proc/{c}").exists()]  # they exited too
    counts = Store(config.parent / "hub.db").run(queries.counts)
    assert counts["events"] >= len(acked)
