"""`python -m bench.serve KIND --port N [--config FILE | --db FILE]`: the servers compared.

All run under exactly the same uvicorn settings (uvloop, httptools, one worker, no
access log), so the ratio hub/bare is what the hub's own work costs: verify, record,
dedupe, group commit, ack. `raw`, `durable`, `lean` and `lean-split` are the ceiling's
rungs (bench/ceiling.py): what a server that does no more than part of that work, or all
of it and nothing else, reaches on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import logging
import sqlite3
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.pushes import BENCH_SECRET

UVICORN_SETTINGS = {
    "loop": "uvloop",
    "http": "httptools",
    "workers": 1,
    "access_log": False,
    "log_level": "warning",
    "lifespan": "on",
}

OK = b'{"ok":true}'


async def bare_endpoint(request: Request) -> Response:
    """The framework's ceiling: read the body, answer 200, nothing else."""
    await request.body()
    return Response(OK, media_type="application/json")


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", bare_endpoint, methods=["GET", "POST"])])


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _ok(send: Any, status: int = 200) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(OK)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": OK})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        if (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            return await send({"type": "lifespan.shutdown.complete"})


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """No framework: read the body, answer 200 (what Starlette's routing costs shows)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await _body(receive)
    await _ok(send)


class DurableApp:
    """The least a durable ingest can do: no framework, each body appended to one SQLite
    table in WAL mode with synchronous=FULL by one thread, in group commits, and acked
    only once its commit returned. No verify, no parse, no dedupe, no dispatch: the hub
    does all of those on top of this."""

    SCHEMA = "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"

    def __init__(self, db: str) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(self.SCHEMA)
        self.thread = ThreadPoolExecutor(1)
        self.pending: list[tuple[Any, asyncio.Future[int]]] = []
        self.flushing: asyncio.Task[None] | None = None

    def _commit(self, batch: list[Any]) -> list[int]:
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO requests (body) VALUES (?)", [(b,) for b in batch])
        self.conn.execute("COMMIT")
        return [200] * len(batch)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending:
            batch, self.pending = self.pending, []
            statuses = await loop.run_in_executor(self.thread, self._commit, [x for x, _ in batch])
            for (_, done), status in zip(batch, statuses, strict=True):
                done.set_result(status)
        self.flushing = None

    def _item(self, scope: dict[str, Any], body: bytes) -> Any:
        return body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        done = asyncio.get_running_loop().create_future()
        self.pending.append((self._item(scope, await _body(receive)), done))
        if self.flushing is None:
            self.flushing = asyncio.ensure_future(self._flush())
        await _ok(send, await done)


class LeanApp(DurableApp):
    """What the issue asks of an ingest, written as tightly as Python allows: the
    Standard Webhooks signature checked (HMAC-SHA256 over id.timestamp.body), the body
    parsed as JSON (msgspec, as the hub), the raw request recorded, the event
    deduplicated by its message id on a UNIQUE index, all in the commit thread's group
    commit, and only then the ack (401 for a bad signature). None of the hub's extras:
    no recorded headers or reasons, no order fields, no orders or dispatch, no connector
    per platform, one process."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, body BLOB NOT NULL, "
        "status INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, request_id INTEGER, "
        "message_id TEXT NOT NULL UNIQUE, type TEXT, payload TEXT)"
    )

    def __init__(self, db: str, secret: str) -> None:
        super().__init__(db)
        self.key = base64.b64decode(secret.removeprefix("whsec_"))
        self.decode = msgspec.json.Decoder().decode

    def _item(self, scope: dict[str, Any], body: bytes) -> Any:
        headers = dict(scope["headers"])
        return (
            headers.get(b"webhook-id", b""),
            headers.get(b"webhook-timestamp", b""),
            headers.get(b"webhook-signature", b""),
            body,
        )

    def _commit(self, batch: list[Any]) -> list[int]:
        statuses = []
        self.conn.execute("BEGIN")
        for msg_id, ts, offered, body in batch:
            mac = hmac.new(self.key, msg_id + b"." + ts + b"." + body, hashlib.sha256)
            ok = hmac.compare_digest(b"v1," + base64.b64encode(mac.digest()), offered)
            status = 200 if ok else 401
            request_id = self.conn.execute(
                "INSERT INTO requests (body, status) VALUES (?, ?)", (body, status)
            ).lastrowid
            if ok:
                # the event's payload is the body's own text, as the hub stores it
                envelope = self.decode(body)
                self.conn.execute(
                    "INSERT OR IGNORE INTO events (request_id, message_id, type, payload) "
                    "VALUES (?, ?, ?, ?)",
                    (request_id, msg_id.decode(), envelope["type"], body.decode()),
                )
            statuses.append(status)
        self.conn.execute("COMMIT")
        return statuses


# LeanSplitApp's worker process: its LeanApp, made by the pool's initializer
_lean: LeanApp | None = None


def _open_lean(db: str, secret: str) -> None:
    global _lean
    _lean = LeanApp(db, secret)


def _lean_commit(batch: list[Any]) -> list[int]:
    assert _lean is not None
    return _lean._commit(batch)


class LeanSplitApp(LeanApp):
    """LeanApp with the hub's split: the event loop only carries requests and answers;
    verify, parse, dedupe and the group commit run in a worker process on the other core
    (batches pickled over the pool's pipe)."""

    def __init__(self, db: str, secret: str) -> None:
        self.pending = []
        self.flushing = None
        self.pool = ProcessPoolExecutor(1, initializer=_open_lean, initargs=(db, secret))

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending:
            batch, self.pending = self.pending, []
            statuses = await loop.run_in_executor(self.pool, _lean_commit, [x for x, _ in batch])
            for (_, done), status in zip(batch, statuses, strict=True):
                done.set_result(status)
        self.flushing = None


def hub_app(config: str) -> object:
    from hub import settings as settings_mod
    from hub.app import create_app
    from hub.runtime import Hub

    return create_app(Hub(settings_mod.load(config)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument("kind", choices=("hub", "bare", "raw", "durable", "lean", "lean-split"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", help="the hub's TOML config (hub only)")
    parser.add_argument("--db", help="the database file (durable, lean, lean-split)")
    args = parser.parse_args(argv)
    if args.kind == "hub" and not args.config:
        parser.error("hub needs --config")
    if args.kind in ("durable", "lean", "lean-split") and not args.db:
        parser.error(f"{args.kind} needs --db")
    logging.basicConfig(level=logging.WARNING)
    apps = {
        "hub": lambda: hub_app(args.config),
        "bare": bare_app,
        "raw": lambda: raw_app,
        "durable": lambda: DurableApp(args.db),
        "lean": lambda: LeanApp(args.db, BENCH_SECRET),
        "lean-split": lambda: LeanSplitApp(args.db, BENCH_SECRET),
    }
    app = apps[args.kind]()
    uvicorn.run(app, host="127.0.0.1", port=args.port, **UVICORN_SETTINGS)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
