"""`orderhook reconcile SHOP --since`: by hand against the local fake on 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub import settings as settings_mod
from hub.cli import cli
from hub.store import Store, reconcile_sql
from sandbox.fakes.platform_api import FakeOrder, FakePlatformApi
from tests.platform_fake import fake_api, shop_toml

fake = pytest.fixture(name="fake")(fake_api)


@pytest.fixture
def config(fake: tuple[FakePlatformApi, str], write_config: Callable[[str], Path]) -> Path:
    _api, url = fake
    return write_config(shop_toml("jd", url))


def add_paid(api: FakePlatformApi, order_id: str, minutes_ago: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    paid = now - timedelta(minutes=minutes_ago)
    api.add_order(
        FakeOrder("jd", order_id, "paid", paid - timedelta(minutes=1), paid=paid, updated=paid)
    )


def test_reconcile_prints_what_pushes_missed(
    fake: tuple[FakePlatformApi, str], config: Path
) -> None:
    api, _url = fake
    add_paid(api, "28100000001", 50)
    add_paid(api, "28100000002", 70)  # outside --since 1h
    result = CliRunner().invoke(cli, ["reconcile", "acme-jd", "--since", "1h", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "missed by pushes 2 (created 1, paid 1)" in result.output
    assert "28100000001" in result.output and "28100000002" not in result.output

    again = CliRunner().invoke(
        cli, ["reconcile", "acme-jd", "--since", "1h", "--json", "-c", str(config)]
    )
    assert again.exit_code == 0, again.output
    summary = json.loads(again.output)
    assert summary["missed_by_pushes"] == 0 and summary["already_known"] == 2
    assert summary["outcome"] == "ok" and summary["pages"] == 2  # two 30-minute windows


def test_reconcile_reports_platform_failure_with_exit_1(
    fake: tuple[FakePlatformApi, str], config: Path
) -> None:
    api, _url = fake
    api.fail(1, "rate_limited")
    result = CliRunner().invoke(
        cli, ["reconcile", "acme-jd", "--since", "20m", "--json", "-c", str(config)]
    )
    assert result.exit_code == 1
    summary = json.loads(result.output)
    assert summary["outcome"] == "failed" and summary["error"]["code"] == "2"


TOKEN_ERROR = "environment variable JD_TOKEN is not set"


def block(config: Path) -> Store:
    """The shop as the hub's own pulls left it: blocked for a missing token."""
    store = Store(settings_mod.load(config, env={}).db)
    store.run(reconcile_sql.mark_blocked, "acme-jd", "jd", "missing_token", TOKEN_ERROR)
    store.run(reconcile_sql.mark_blocked, "acme-jd", "jd", "missing_token", TOKEN_ERROR)
    return store


def test_reconcile_says_the_shop_is_blocked_and_how_to_clear_it(
    fake: tuple[FakePlatformApi, str], config: Path
) -> None:
    api, _url = fake
    store = block(config)
    (before,) = store.run(reconcile_sql.states, "acme-jd")
    api.fail(1, "rate_limited")  # a transient failure leaves the block as it was
    result = CliRunner().invoke(cli, ["reconcile", "acme-jd", "--since", "20m", "-c", str(config)])
    assert result.exit_code == 1
    out = result.output
    since = before["blocked"]["since"]
    blocked = re.search(r"BLOCKED +since (\S+) \(\S+ ago, 2 tries\): missing_token: (.+)", out)
    assert blocked and blocked.groups() == (since, TOKEN_ERROR), out
    assert "fix the shop's token or credentials in the config and restart" in out
    assert "a pull that works clears the block" in out
    assert "orderhook reconcile acme-jd --since 1h" in out

    api.fail(1, "rate_limited")
    again = CliRunner().invoke(
        cli, ["reconcile", "acme-jd", "--since", "20m", "--json", "-c", str(config)]
    )
    summary = json.loads(again.output)
    assert summary["error"]["code"] == "2"  # this run's error, beside the standing block
    assert summary["blocked"] == before["blocked"] and summary["unblocked"] is None


def test_reconcile_that_works_clears_the_block(
    fake: tuple[FakePlatformApi, str], config: Path
) -> None:
    api, _url = fake
    store = block(config)
    add_paid(api, "28100000003", 10)
    result = CliRunner().invoke(cli, ["reconcile", "acme-jd", "--since", "20m", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "BLOCKED" not in result.output
    assert "unblocked        this pull worked" in result.output
    assert "(missing_token, 2 tries) is cleared" in result.output
    (after,) = store.run(reconcile_sql.states, "acme-jd")
    assert after["blocked"] is None
    quiet = CliRunner().invoke(cli, ["reconcile", "acme-jd", "--since", "20m", "-c", str(config)])
    assert quiet.exit_code == 0 and "BLOCKED" not in quiet.output
    assert "unblocked" not in quiet.output  # nothing extra for a shop that is not blocked


def test_reconcile_that_blocks_the_shop_says_so(
    fake: tuple[FakePlatformApi, str],
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, url = fake
    monkeypatch.delenv("ORDERHOOK_TEST_CLI_TOKEN", raising=False)
    config = write_config(shop_toml("jd", url).replace('"tok"', '"env:ORDERHOOK_TEST_CLI_TOKEN"'))
    result = CliRunner().invoke(
        cli, ["reconcile", "acme-jd", "--since", "20m", "--json", "-c", str(config)]
    )
    assert result.exit_code == 1
    summary = json.loads(result.output)
    assert summary["blocked"]["code"] == "missing_token" and summary["blocked"]["tries"] == 1
    assert "ORDERHOOK_TEST_CLI_TOKEN" in summary["blocked"]["error"]
    assert api.calls == []


def test_reconcile_explains_bad_input(config: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(cli, ["reconcile", "nope", "--since", "1h", "-c", str(config)])
    assert unknown.exit_code != 0 and "no shop 'nope'" in unknown.output
    bad = runner.invoke(cli, ["reconcile", "acme-jd", "--since", "yesterday", "-c", str(config)])
    assert bad.exit_code == 2 and "duration" in bad.output
    backwards = runner.invoke(
        cli, ["reconcile", "acme-jd", "--since", "1h", "--until", "2h", "-c", str(config)]
    )
    assert backwards.exit_code == 2 and "before --until" in backwards.output
    standard = runner.invoke(cli, ["reconcile", "acme", "--since", "1h", "-c", str(config)])
    assert standard.exit_code == 1 and "no API client" in standard.output


def test_reconcile_help_has_examples() -> None:
    result = CliRunner().invoke(cli, ["reconcile", "--help"])
    assert result.exit_code == 0
    assert "orderhook reconcile acme-jd --since 2h" in result.output
