"""The ingest writer benchmark (bench/writer.py): it must feed the writer what the event
loop really captures, and count only outcomes that are right (no figure is asserted)."""

from __future__ import annotations

import dataclasses
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bench import pushes, writer
from tests.conftest import serve_app


def test_received_tuples_are_what_uvicorn_hands_the_hub() -> None:
    seen: list[tuple[Any, ...]] = []

    async def capture(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append((scope["method"], scope["path"], scope["query_string"], scope["headers"], body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    push = pushes.make(1, "rx")[0]
    with serve_app(capture) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(push.raw)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    method, path, query, headers, body = seen[0]
    mine = writer.received(push.raw, 1_764_000_000_000_000)
    assert mine[1:6] == (method, path, query, headers, body)
    assert [name for name, _ in headers][:3] == [b"host", b"content-type", b"webhook-id"]


def test_a_run_commits_every_push_and_checks_its_outcome(tmp_path: Path) -> None:
    result = writer.run(tmp_path, 150, 1, lambda _: None, scenarios=("mixed",))
    x = result["scenarios"][0]
    sent = x["sent"]
    assert x["outcomes"] == {
        "accepted:": sent["new"],
        "duplicate:duplicate": sent["duplicate"],
        "rejected:bad_signature": sent["bad_signature"],
    }
    assert x["cpu_us_per_push"] > 0 and x["commit_us"] > 0
    parts = x["admit_us"] + x["rows_sql_us"] + x["commit_us"]
    assert abs(parts - x["cpu_us_per_push"]) <= 0.5
    with sqlite3.connect(tmp_path / "mixed-0" / "writer.db") as conn:
        requests, handled = conn.execute(
            "SELECT count(*), count(handling_ms) FROM requests"
        ).fetchone()
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    assert requests == handled == 150  # the last batch's handling times were stored too
    assert events == sent["new"]


def test_a_wrong_outcome_fails_the_run(tmp_path: Path) -> None:
    batch = pushes.make(40, "bad", pushes.Mix(bad_signatures=0.5), seed=3)
    lied = [dataclasses.replace(p, kind="new") for p in batch]  # claim the bad ones are fine
    with pytest.raises(RuntimeError, match="came out"):
        writer.once(lied, 16, tmp_path)
