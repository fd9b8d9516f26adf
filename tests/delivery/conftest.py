"""Fixtures for delivery tests: a hub with a fast retry schedule, real receivers on
127.0.0.1, signed pushes through the real webhook path, and a stand-in for hub.notify."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from connectors.notify import SEVERITIES
from hub import notify as hub_notify
from hub import settings as settings_mod
from hub.app import create_app
from hub.auth import issue_token
from hub.runtime import Hub
from hub.settings import Settings
from hub.store import Store
from tests.helpers import order_body, signed

FAST = {
    "allow_private": True,  # every receiver in these tests is on 127.0.0.1
    "backoff_base": 0.05,
    "backoff_max": 0.2,
    "jitter": 0.0,
    "timeout": 1.0,
    "lease_seconds": 3.0,
    "poll_interval": 0.02,
    "breaker_failures": 100,
}


def delivery_toml(**overrides: Any) -> str:
    values = {**FAST, **overrides}
    lines = ["[delivery]"]
    for key, value in values.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def make_settings(write_config: Callable[..., Path]) -> Callable[..., Settings]:
    def make(extra: str = "", **overrides: Any) -> Settings:
        return settings_mod.load(write_config(delivery_toml(**overrides) + extra), env={})

    return make


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Hub, httpx.AsyncClient, str]]:
    """A running hub, an ASGI client on it, and an admin token."""
    token = Store(settings.db).run(issue_token, f"root-{uuid.uuid4().hex[:6]}", "admin")
    hub = Hub(settings)
    async with hub.running():
        transport = httpx.ASGITransport(app=create_app(hub, lifespan=False))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://hub",
            headers={"authorization": f"Bearer {token}"},
        ) as client:
            yield hub, client, token


async def push(
    client: httpx.AsyncClient,
    order_id: str,
    kind: str = "paid",
    *,
    shop: str = "acme",
    **data: Any,
) -> None:
    """A signed Standard Webhooks push through the real ingest path."""
    body = order_body(f"order.{kind}", order_id, amount="12.30", **data)
    response = await client.post(f"/webhooks/standard/{shop}", content=body, headers=signed(body))
    assert response.status_code == 200, response.text


async def wait_until(check: Callable[[], Awaitable[Any]], what: str, limit: float = 30.0) -> Any:
    """Poll until check() is truthy (a bound on waiting, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}; last value {value!r}")
        await asyncio.sleep(0.02)


async def subscribe(client: httpx.AsyncClient, url: str, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/subscriptions", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    sub: dict[str, Any] = response.json()
    return sub


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def order_id(self) -> str:
        return str(json.loads(self.body)["data"]["order_id"])

    @property
    def kind(self) -> str:
        return str(json.loads(self.body)["data"]["kind"])


@dataclass
class Receiver:
    """An ASGI receiver whose answers a test scripts: `answer(n, request_body)` gives
    (status, headers, hang seconds) for the n-th request (0-based)."""

    answer: Callable[[int, bytes], tuple[int, dict[str, str], float]] = lambda n, body: (
        200,
        {},
        0.0,
    )
    log: list[Received] = field(default_factory=list)
    inflight: int = 0
    max_inflight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        request = Request(scope, receive)
        body = await request.body()
        with self.lock:
            n = len(self.log)
            status, headers, hang = self.answer(n, body)
            self.log.append(Received(dict(request.headers), body, status))
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if hang:
                await asyncio.sleep(hang)
        finally:
            with self.lock:
                self.inflight -= 1
        await Response(b'{"ok":true}' if status < 300 else b"nope", status, headers)(
            scope, receive, send
        )

    def ok(self) -> list[Received]:
        return [r for r in self.log if 200 <= r.status < 300]


@dataclass
class FakeNotify:
    """Records the alerts delivery raises (in place of hub.notify.alert, whose channels
    have their own tests); refuses what the real one refuses."""

    alerts: list[dict[str, Any]] = field(default_factory=list)

    def alert(self, conn: Any, settings: Any, *, title: str, text: str, severity: str) -> None:
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
        self.alerts.append({"title": title, "text": text, "severity": severity})


@pytest.fixture
def notify(monkeypatch: pytest.MonkeyPatch) -> FakeNotify:
    fake = FakeNotify()
    monkeypatch.setattr(hub_notify, "alert", fake.alert)
    return fake
