"""The local platform API fake as a sandbox command: help with examples, demo orders a
real client can pull."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner

import connectors
from hub.cli import cli
from hub.model import Kind, utcnow
from hub.settings import Shop
from sandbox.fakes import platform_api
from tests.conftest import serve_app

pytestmark = pytest.mark.anyio


def test_command_help_has_examples() -> None:
    # through `orderhook simulate`, by the name its own examples use
    result = CliRunner().invoke(cli, ["simulate", "platform-api", "--help"])
    assert result.exit_code == 0, result.output
    assert "orderhook simulate platform-api --platform jd" in result.output
    assert "api_base" in result.output
    listed = CliRunner().invoke(cli, ["simulate", "--help"]).output
    assert "platform-api" in listed and "platform_api" not in listed


def test_command_refuses_an_unknown_platform() -> None:
    result = CliRunner().invoke(
        platform_api.command, ["--platform", "ebay", "--app-key", "k", "--secret", "s"]
    )
    assert result.exit_code == 2 and "ebay" in result.output


async def test_demo_orders_are_served_to_a_signed_client() -> None:
    fake = platform_api.demo("pinduoduo", "demo-key", "demo-secret", 5)
    with serve_app(fake.app) as url:
        shop = Shop(
            "demo",
            "pinduoduo",
            "demo-secret",
            app_key="demo-key",
            api_base=url,
            options={"access_token": "demo-token"},  # PDD's order query needs one
        )
        client = connectors.api_client(shop)
        now = utcnow()
        events = [e async for e in client.changed_orders(now - timedelta(hours=1), now)]
        await client.aclose()
    assert sorted(e.kind for e in events).count(Kind.PAID) == 5
    assert all(call["signed"] for call in fake.calls)
