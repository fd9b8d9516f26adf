"""`orderhook notify channels|test` through click's CliRunner, robots mocked with respx."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import respx
from click.testing import CliRunner

from hub.cli import cli

KEY = "693a91f6-7aoc-4bc4-97a0-0ec2sifa5aaa"
CONFIG = """
[notify]
alerts = ["ops-wecom"]

[notify.channels.ops-wecom]
kind = "wecom"
key = "env:CLI_WECOM_KEY"

[notify.channels.erp-hook]
kind = "webhook"
url = "https://erp.example/hooks"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"""


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch, write_config: Callable[[str], Path]) -> Path:
    monkeypatch.setenv("CLI_WECOM_KEY", KEY)
    return write_config(CONFIG)


def test_channels_lists_masked(config: Path) -> None:
    result = CliRunner().invoke(cli, ["notify", "channels", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "* ops-wecom" in result.output and "  erp-hook" in result.output
    assert KEY not in result.output and "whsec_MfKQ" not in result.output


def test_test_sends_and_reports(config: Path) -> None:
    with respx.mock() as router:
        route = router.post("https://qyapi.weixin.qq.com/cgi-bin/webhook/send").respond(
            200, json={"errcode": 0, "errmsg": "ok"}
        )
        result = CliRunner().invoke(
            cli, ["notify", "test", "ops-wecom", "--title", "Drill", "-c", str(config)]
        )
    assert result.exit_code == 0, result.output
    assert json.loads(route.calls.last.request.content)["markdown"]["content"].startswith(
        "**Drill**"
    )


def test_test_failure_names_the_setting_and_exits_1(config: Path) -> None:
    with respx.mock() as router:
        router.post("https://qyapi.weixin.qq.com/cgi-bin/webhook/send").respond(
            200, json={"errcode": 93000, "errmsg": "invalid webhook url"}
        )
        result = CliRunner().invoke(cli, ["notify", "test", "ops-wecom", "-c", str(config)])
    assert result.exit_code == 1
    assert "fix `key`" in result.output and "will not succeed" in result.output
    assert KEY not in result.output


def test_unknown_channel(config: Path) -> None:
    result = CliRunner().invoke(cli, ["notify", "test", "nope", "-c", str(config)])
    assert result.exit_code == 1 and "known: erp-hook, ops-wecom" in result.output


@pytest.mark.parametrize("command", [["notify"], ["notify", "channels"], ["notify", "test"]])
def test_help_has_examples(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    if command != ["notify"]:
        assert "orderhook notify" in result.output


def test_docs_cover_every_channel_setting_and_command() -> None:
    from connectors import notify as wire

    docs = (Path(__file__).parent.parent / "docs" / "notifications.md").read_text()
    for name, module in wire.kinds().items():
        assert f'kind = "{name}"' in docs
        for key in (*module.KEYS, "per_minute"):
            assert f"{key} =" in docs or f"`{key}`" in docs, (name, key)
    for command in ("orderhook notify channels", "orderhook notify test"):
        assert command in docs
