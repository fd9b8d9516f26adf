"""Shared fixtures: a configured hub on a temp database, driven in-process or over a real
uvicorn on 127.0.0.1. Nothing writes outside tmp_path."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from hub import settings as settings_mod
from hub.app import create_app
from hub.auth import issue_token
from hub.runtime import Hub
from hub.settings import Settings
from hub.store import Store
from tests import netguard

DEMO_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the spec's own example secret

BASE_CONFIG = f"""
[hub]
db = "hub.db"
max_body_bytes = 4096

[shops.acme]
platform = "standard"
secret = "{DEMO_SECRET}"
"""


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    """Fail the test that tried to reach anything but 127.0.0.1/::1 (see tests/netguard)."""
    netguard.install()
    netguard.take_attempts()  # a straggler thread of an earlier test is not this one's
    yield
    if refused := netguard.take_attempts():
        pytest.fail(
            "this test tried to reach non-loopback host(s) "
            f"{', '.join(refused)}: give the shop a local `api_base`/`message_url`, "
            "or run the hub without the stage that calls out",
            pytrace=False,
        )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a config file under tmp_path: BASE_CONFIG plus extra TOML."""

    def write(extra: str = "", base: str = BASE_CONFIG) -> Path:
        path = tmp_path / "orderhook.toml"
        path.write_text(base + "\n" + extra, encoding="utf-8")
        return path

    return write


@pytest.fixture
def settings(write_config: Callable[[str], Path]) -> Settings:
    return settings_mod.load(write_config(""), env={})


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    """A running hub (store, writer, stages) without a server."""
    running = Hub(settings)
    async with running.running():
        yield running


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """httpx client on the hub's ASGI app (no sockets)."""
    app = create_app(hub, lifespan=False)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
        yield c


@pytest.fixture
def admin_token(settings: Settings) -> str:
    return Store(settings.db).run(issue_token, "root", "admin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_app(app: Any, port: int | None = None, **config: Any) -> Iterator[str]:
    """Run an ASGI app on a real uvicorn at 127.0.0.1 in a thread; yields its base URL."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port or 0))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False, **config)
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            if not thread.is_alive():
                raise RuntimeError("uvicorn failed to start")
            threading.Event().wait(0.01)
        scheme = "https" if config.get("ssl_certfile") else "http"
        yield f"{scheme}://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def live_hub(settings: Settings) -> Iterator[tuple[str, Hub]]:
    """The whole hub behind a real uvicorn on 127.0.0.1: (base_url, hub)."""
    hub = Hub(settings)
    with serve_app(create_app(hub)) as url:
        yield url, hub


CHROMIUM = os.environ.get("ORDERHOOK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def chromium_path() -> str:
    if not os.path.exists(CHROMIUM):
        message = (
            f"no Chromium at {CHROMIUM} (make test installs it as root: apt-get install chromium)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM
