"""The local platform API fake on a real loopback server, and shop snippets pointing
at it, shared by the API client, degradation and reconciliation tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from hub.settings import Shop
from hub.store import Store
from sandbox.fakes.platform_api import App, FakePlatformApi
from tests.conftest import serve_app

PLATFORMS = ("taobao", "jd", "douyin", "pinduoduo")


def fake_api() -> Iterator[tuple[FakePlatformApi, str]]:
    """Fixture body: the fake knows every platform's app `{platform}-key` /
    `{platform}-secret`; yields (fake, base URL)."""
    api = FakePlatformApi([App(p, f"{p}-key", f"{p}-secret") for p in PLATFORMS])
    with serve_app(api.app) as url:
        yield api, url


def fake_shop(platform: str, url: str, **options: Any) -> Shop:
    """Shop `acme-<platform>` of the fake's app of `platform`, token `tok`, with options."""
    return Shop(
        f"acme-{platform}",
        platform,
        f"{platform}-secret",
        app_key=f"{platform}-key",
        api_base=url,
        options={"access_token": "tok", **options},
    )


async def started_store(tmp_path: Path) -> AsyncIterator[Store]:
    """Fixture body: a running Store on a fresh database under tmp_path."""
    store = Store(tmp_path / "hub.db")
    await store.start()
    yield store
    await store.stop()


def shop_toml(platform: str, url: str, name: str | None = None, **options: Any) -> str:
    """A `[shops.<name>]` table for the fake's app of `platform`, with options."""
    name = name or f"acme-{platform}"
    lines = [
        f"[shops.{name}]",
        f'platform = "{platform}"',
        f'secret = "{platform}-secret"',
        f'app_key = "{platform}-key"',
        f'api_base = "{url}"',
        "",
        f"[shops.{name}.options]",
        'access_token = "tok"',
    ]
    # JSON scalars are valid TOML scalars: "text", true/false, numbers
    lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"
