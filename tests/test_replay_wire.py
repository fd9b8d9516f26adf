"""`orderhook replay` on the wire: the bytes it sends, requests in flight at once, and
what happens to an answer that never comes (sandbox/exact_http.py, sandbox/replay.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub.cli import cli
from hub.store import Store, sandbox_sql
from sandbox import recordings
from tests.conftest import serve_app

ROOT = Path(__file__).resolve().parent.parent
OK = b'{"ok":true}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: session=abc\r\n"
    b"Content-Length: 11\r\n\r\n" + OK
)


def recording(n: int, **changes: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "format": recordings.FORMAT,
        "id": n,
        "method": "POST",
        "path": "/webhooks/standard/acme",
        "query": "",
        "headers": [["content-type", "application/json"], ["webhook-id", f"msg_{n}"]],
        "body": json.dumps({"type": "order.paid", "data": {"order_id": str(n)}}),
        "body_encoding": "utf-8",
        "platform": "standard",
        "shop": "acme",
        "response": {"status": 200, "body": '{"ok": true}', "body_encoding": "utf-8"},
    }
    return rec | changes


def write_recordings(folder: Path, recs: list[dict[str, Any]]) -> Path:
    folder.mkdir()
    for rec in recs:
        recordings.dump(rec, folder / f"{rec['id']:06d}.json")
    return folder


def replay(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["replay", *args, "--json"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, json.loads(result.stdout)


@contextlib.contextmanager
def raw_endpoint(
    answer: bytes | None, answer_first: int | None = None
) -> Iterator[tuple[str, list[bytes]]]:
    """A socket on 127.0.0.1 that keeps every request's bytes (head and body) as they
    arrived and sends `answer` to each (to the first `answer_first` only); with None
    it reads and never answers."""
    seen: list[bytes] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(buffer) < length:
                    buffer += self.request.recv(65536)
                seen.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                if answer is None or (answer_first is not None and len(seen) > answer_first):
                    while self.request.recv(65536):  # until the client gives up
                        pass
                    return
                self.request.sendall(answer)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_recorded_bytes_go_out_with_only_host_and_length_added(tmp_path):
    chinese = "订单-1".encode().decode("latin-1")  # how the hub records UTF-8 header bytes
    body = '{"note": "加急"}'
    first = recording(
        1,
        query="sig=a%2Fb+c&x=%41",
        headers=[
            ["content-type", "application/json"],
            ["x-trace", "one"],
            ["x-note", chinese],
            ["x-trace", "two"],
            ["content-length", "999"],
            ["host", "elsewhere"],
        ],
        body=body,
    )
    folder = write_recordings(tmp_path / "rec", [first, recording(2)])
    with raw_endpoint(ANSWER) as (base, seen):
        # by name: a client's cookie jar would keep a cookie from localhost, not 127.0.0.1
        base = base.replace("127.0.0.1", "localhost")
        code, summary = replay(
            "-f", str(folder), "--to", base, "--concurrency", "1", "--db", str(tmp_path / "x.db")
        )
    assert code == 0, summary
    assert summary["same"] == 2
    head, _, sent_body = seen[0].partition(b"\r\n\r\n")
    request_line, *lines = head.split(b"\r\n")
    # the query's escapes as recorded: %2F not turned into '/', %41 not into 'A'
    assert request_line == b"POST /webhooks/standard/acme?sig=a%2Fb+c&x=%41 HTTP/1.1"
    assert sent_body == body.encode()
    port = base.rsplit(":", 1)[1]
    own = {b"host: localhost:" + port.encode(), b"content-length: " + str(len(sent_body)).encode()}
    assert {line.lower() for line in lines} - {
        b"content-type: application/json",
        b"x-trace: one",
        b"x-trace: two",
        "x-note: 订单-1".encode(),
    } == own
    recorded = [line for line in lines if line.lower() not in own]
    assert recorded == [
        b"content-type: application/json",
        b"x-trace: one",
        "x-note: 订单-1".encode(),  # the recorded bytes, not re-encoded
        b"x-trace: two",
    ]
    # the endpoint's cookie is not sent back: the second request has the recorded headers
    second = seen[1].partition(b"\r\n\r\n")[0].lower()
    assert b"cookie" not in second and b"webhook-id: msg_2" in second


def test_a_header_that_cannot_be_sent_as_recorded_fails_that_request_only(tmp_path):
    bad = recording(1, headers=[["x-raw", "\xff\xfe"]])  # bytes 0xFF 0xFE: not UTF-8
    folder = write_recordings(tmp_path / "rec", [bad, recording(2)])
    with raw_endpoint(ANSWER) as (base, seen):
        code, summary = replay("-f", str(folder), "--to", base, "--db", str(tmp_path / "x.db"))
    assert code == 1
    by_item = {Path(r["item"]).name: r for r in summary["results"]}
    assert "not UTF-8" in by_item["000001.json"]["error"]
    assert by_item["000002.json"]["same"] is True
    assert len(seen) == 1  # the other one was sent, the bad one never left


def test_concurrency_puts_that_many_requests_in_flight_and_no_more(tmp_path):
    in_flight = {"now": 0, "peak": 0}
    all_in: dict[str, asyncio.Event] = {}

    async def held(request: Request) -> JSONResponse:
        """Answers only once four requests are waiting at the same time."""
        ready = all_in.setdefault("event", asyncio.Event())
        in_flight["now"] += 1
        in_flight["peak"] = max(in_flight["peak"], in_flight["now"])
        if in_flight["now"] >= 4:
            ready.set()
        try:
            await asyncio.wait_for(ready.wait(), 20)
        except TimeoutError:
            return JSONResponse({"ok": False}, status_code=503)
        finally:
            in_flight["now"] -= 1
        return JSONResponse({"ok": True})

    folder = write_recordings(tmp_path / "rec", [recording(n) for n in range(1, 13)])
    app = Starlette(routes=[Route("/webhooks/standard/acme", held, methods=["POST"])])
    db = tmp_path / "x.db"
    with serve_app(app) as base:
        code, summary = replay(
            "-f", str(folder), "--to", base, "--concurrency", "4", "--db", str(db)
        )
    assert code == 0, summary
    assert summary["same"] == 12 and in_flight["peak"] == 4
    store = Store(db)
    assert store.run(sandbox_sql.get_run, summary["run_id"])["state"] == "done"
    stored = store.run(sandbox_sql.run_results, summary["run_id"])
    assert len(stored) == 12 and all(r["status"] == 200 and r["same"] for r in stored)


def test_an_endpoint_that_never_answers_is_a_timeout_per_request(tmp_path):
    folder = write_recordings(tmp_path / "rec", [recording(1), recording(2)])
    db = tmp_path / "x.db"
    with raw_endpoint(None) as (base, seen):
        code, summary = replay("-f", str(folder), "--to", base, "--timeout", "0.5", "--db", str(db))
    assert code == 1
    assert summary["failed"] == 2 and len(seen) == 2
    assert all(
        r["error"].startswith(("TimeoutError", "ServerTimeoutError")) for r in summary["results"]
    )
    stored = Store(db).run(sandbox_sql.run_results, summary["run_id"])
    assert [r["status"] for r in stored] == [None, None] and all(r["error"] for r in stored)


def test_ctrl_c_stops_a_running_replay_and_keeps_what_was_answered(tmp_path):
    folder = write_recordings(tmp_path / "rec", [recording(n) for n in range(1, 7)])
    db = tmp_path / "x.db"
    cmd = [sys.executable, "-m", "hub.cli", "replay", "-f", str(folder), "--to"]
    with raw_endpoint(ANSWER, answer_first=3) as (base, seen):
        cmd += [base, "--concurrency", "1", "--db", str(db), "--json"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(seen) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # until the fourth request waits for its answer
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"resume with: orderhook replay --resume" in err
    summary = json.loads(out)
    assert summary["interrupted"] is True and summary["sent"] == 3 and summary["same"] == 3
    store = Store(db)
    assert store.run(sandbox_sql.get_run, summary["run_id"])["state"] == "interrupted"
    answered = store.run(sandbox_sql.answered_items, summary["run_id"])
    assert sorted(Path(item).name for item in answered) == [f"{n:06d}.json" for n in (1, 2, 3)]
