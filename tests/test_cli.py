from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hub import settings as settings_mod
from hub.cli import cli
from hub.store import Store, queries
from tests.conftest import free_port


def test_every_command_has_help_with_examples() -> None:
    runner = CliRunner()

    def walk(group, prefix):  # type: ignore[no-untyped-def]
        for name, command in group.commands.items():
            yield [*prefix, name], command
            if hasattr(command, "commands"):
                yield from walk(command, [*prefix, name])

    for path, command in walk(cli, []):
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, result.output
        if not hasattr(command, "commands"):
            assert "Example" in result.output, f"orderhook {' '.join(path)} --help has no examples"


def test_init_writes_a_valid_config_with_a_fresh_secret(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "o.toml"
    assert runner.invoke(cli, ["init", str(target)]).exit_code == 0
    first = settings_mod.load(target, env={})
    assert first.shops["demo-shop"].secret.startswith("whsec_")
    again = runner.invoke(cli, ["init", str(target)])
    assert again.exit_code != 0 and "exists" in again.output
    assert runner.invoke(cli, ["init", str(target), "--force"]).exit_code == 0
    assert (
        settings_mod.load(target, env={}).shops["demo-shop"].secret
        != first.shops["demo-shop"].secret
    )


def test_users_add_list_revoke(write_config) -> None:  # type: ignore[no-untyped-def]
    config = str(write_config())
    runner = CliRunner()
    added = runner.invoke(cli, ["users", "add", "ana", "--role", "operator", "--config", config])
    assert added.exit_code == 0, added.output
    token = added.stdout.strip().splitlines()[0]
    assert token.startswith("oh_")
    listed = runner.invoke(cli, ["users", "list", "--config", config])
    assert "ana" in listed.output and "operator" in listed.output and "1 token" in listed.output
    clash = runner.invoke(cli, ["users", "add", "ana", "--role", "admin", "--config", config])
    assert clash.exit_code != 0 and "exists with role" in clash.output
    revoked = runner.invoke(cli, ["users", "revoke", "ana", "--config", config])
    assert "revoked 1 token" in revoked.output
    store = Store(Path(config).parent / "hub.db")
    assert store.run(queries.list_users)[0]["tokens"] == 0


def test_a_bad_config_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[shops.x]\nplatform = 'nope'\nsecret = 's'\n")
    result = CliRunner().invoke(cli, ["users", "list", "--config", str(bad)])
    assert result.exit_code == 1
    assert "bad.toml:2:" in result.output and "not a known platform" in result.output


@pytest.mark.slow
def test_demo_serves_and_pushes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    port = free_port()
    result = CliRunner().invoke(cli, ["demo", "--count", "15", "--rate", "50", "--port", str(port)])
    assert result.exit_code == 0, result.output
    assert f"http://127.0.0.1:{port}" in result.output
    assert result.output.count("push ") >= 15
    counts = Store(tmp_path / "orderhook-demo.db").run(queries.counts)
    assert counts["requests"] == 15 and counts["events"] >= 1
