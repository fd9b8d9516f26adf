"""The ceiling's rungs (bench/ceiling.py): servers that do part of the hub's work, or
exactly the work the benchmark names and nothing else, as tight as Python allows.

Each is a plain ASGI callable, no framework:
- `raw_app`: read the body, answer 200;
- `group_commit(BodyTable(db))`: every body appended to SQLite in group commits, acked
  after its commit (`durable`);
- `group_commit(LeanTables(db, secret))`: the Standard Webhooks signature checked, the
  body parsed, the request recorded and its event deduplicated by message id, all in
  the group commit (`lean`);
- `group_commit_in_worker(...)`: the same tables in a worker process, the event loop
  only carrying requests and answers, as the hub splits its work (`lean-split`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import msgspec

OK = b'{"ok":true}'


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Any, status: int = 200) -> None:
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
    await _answer(send)


def _open(db: str, schema: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(schema)
    return conn


class BodyTable:
    """The least a durable ingest does: each body appended to one table. No verify, no
    parse, no dedupe: the hub does all of those on top of this."""

    def __init__(self, db: str) -> None:
        self.conn = _open(
            db, "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"
        )

    @staticmethod
    def item(scope: dict[str, Any], body: bytes) -> Any:
        """What the event loop hands over for one request."""
        return body

    def commit(self, batch: list[Any]) -> list[int]:
        """One transaction for the batch; the status to answer each request with."""
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO requests (body) VALUES (?)", [(b,) for b in batch])
        self.conn.execute("COMMIT")
        return [200] * len(batch)


class LeanTables:
    """What the benchmark names, and nothing else: the Standard Webhooks signature
    (HMAC-SHA256 over id.timestamp.body; 401 when wrong), the body parsed as JSON (msgspec,
    as the hub), the request recorded with its status, the event deduplicated by its
    message id on a UNIQUE index. None of the hub's extras: no recorded headers or
    reasons, no timestamp window, no canonical event, no orders, no connector per
    platform."""

    def __init__(self, db: str, secret: str) -> None:
        self.conn = _open(
            db,
            "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, body BLOB NOT NULL, "
            "status INTEGER NOT NULL);"
            "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, request_id INTEGER, "
            "message_id TEXT NOT NULL UNIQUE, type TEXT, payload TEXT)",
        )
        self.key = base64.b64decode(secret.removeprefix("whsec_"))
        self.decode = msgspec.json.Decoder().decode

    @staticmethod
    def item(scope: dict[str, Any], body: bytes) -> Any:
        headers = dict(scope["headers"])
        return (
            headers.get(b"webhook-id", b""),
            headers.get(b"webhook-timestamp", b""),
            headers.get(b"webhook-signature", b""),
            body,
        )

    def commit(self, batch: list[Any]) -> list[int]:
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


Table = BodyTable | LeanTables


class GroupCommitApp:
    """Requests wait in a list while a batch commits; the next batch is all that came
    meanwhile. Each request is answered only once its batch's commit returned."""

    def __init__(
        self,
        item: Callable[[dict[str, Any], bytes], Any],
        commit: Callable[[list[Any]], Awaitable[list[int]]],
    ) -> None:
        self.item = item
        self.commit = commit
        self.pending: list[tuple[Any, asyncio.Future[int]]] = []
        self.flushing: asyncio.Task[None] | None = None

    async def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            statuses = await self.commit([x for x, _ in batch])
            for (_, done), status in zip(batch, statuses, strict=True):
                done.set_result(status)
        self.flushing = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        done = asyncio.get_running_loop().create_future()
        self.pending.append((self.item(scope, await _body(receive)), done))
        if self.flushing is None:
            self.flushing = asyncio.ensure_future(self._flush())
        await _answer(send, await done)


def _in(
    executor: Executor, fn: Callable[[list[Any]], list[int]]
) -> Callable[[list[Any]], Awaitable[list[int]]]:
    """`fn` run on `executor`, awaited by the event loop."""

    def commit(batch: list[Any]) -> Awaitable[list[int]]:
        return asyncio.get_running_loop().run_in_executor(executor, fn, batch)

    return commit


def group_commit(table: Table) -> GroupCommitApp:
    """The table committed by one thread of the server's own process (one core: the
    GIL)."""
    return GroupCommitApp(table.item, _in(ThreadPoolExecutor(1), table.commit))


# the worker process's table, made by the pool's initializer
_worker_table: list[Table] = []


def _open_in_worker(make: Callable[..., Table], *args: Any) -> None:
    _worker_table.append(make(*args))


def _commit_in_worker(batch: list[Any]) -> list[int]:
    return _worker_table[0].commit(batch)


def group_commit_in_worker(make: type[Table], *args: Any) -> GroupCommitApp:
    """`make(*args)` committed in a worker process (batches pickled over the pool's
    pipe), the event loop only carrying requests and answers: the hub's split."""
    pool = ProcessPoolExecutor(1, initializer=_open_in_worker, initargs=(make, *args))
    return GroupCommitApp(make.item, _in(pool, _commit_in_worker))
