"""`orderhook reconcile SHOP --since`: by hand against the local fake on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.cli import cli
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
