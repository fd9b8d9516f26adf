"""`orderhook simulate taobao|pinduoduo` serve the fakes: each module's `command`."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sandbox.fakes import pinduoduo, taobao


@pytest.mark.parametrize(("module", "name"), [(taobao, "taobao"), (pinduoduo, "pinduoduo")])
def test_command_help_has_examples(module, name):
    assert module.command.name == name
    result = CliRunner().invoke(module.command, ["--help"])
    assert result.exit_code == 0, result.output
    assert f"orderhook simulate {name} --drop-after" in result.output


@pytest.mark.parametrize(
    ("module", "expect"),
    [(taobao, 'platform = "taobao"'), (pinduoduo, 'platform = "pinduoduo"')],
)
def test_command_serves_and_reports_progress(module, expect):
    args = ["--port", "0", "--duration", "0.3", "--orders", "2", "--rate", "50"]
    result = CliRunner().invoke(module.command, args)
    assert result.exit_code == 0, result.output
    assert expect in result.output and 'message_url = "ws://127.0.0.1:' in result.output
    assert "published 2" in result.output or "published 4" in result.output
