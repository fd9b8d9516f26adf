"""`orderhook rules explain` and `orderhook rules test` on a database a hub filled."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hub import settings as settings_mod
from hub.cli import cli
from hub.store import dispatch_sql
from tests.dispatch_support import DISPATCH_TOML, eventually, push

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(write_config):
    return settings_mod.load(write_config(DISPATCH_TOML), env={})


async def routed(hub, *order_ids):
    async def ready():
        tasks = [
            await hub.store.read(dispatch_sql.task_for_order, ("standard", "acme", o))
            for o in order_ids
        ]
        return all(t and t["state"] != "queued" for t in tasks)

    await eventually(ready)


async def test_explain_names_the_rule_and_each_failed_condition(hub, client, settings):
    await push(
        client,
        "paid",
        "3301",
        amount="20",
        province="广东",
        items=[{"sku": "P-1", "category": "phones"}],
    )
    await routed(hub, "3301")
    result = CliRunner().invoke(cli, ["rules", "explain", "3301", "-c", str(settings.source)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("order standard/acme/3301: assigned, amount 20 CNY")
    assert "categories phones" in lines[0] and "province 广东" in lines[0]
    assert "rule 'presale-hold' (line" in lines[1] and "flags in [presale]" in lines[1]
    assert "rule 'big-south'" in lines[2] and "amount > 500, the order has 20" in lines[2]
    assert "rule 'phones'" in lines[3] and "MATCHED -> group vip, priority 1" in lines[3]
    assert any("assigned" in line and "least loaded in vip" in line for line in lines)
    assert any("status paid -> assigned by task:" in line for line in lines)
    assert any("status - -> paid by event:order.paid" in line for line in lines)


async def test_explain_unknown_order_fails_clearly(hub, settings):
    result = CliRunner().invoke(cli, ["rules", "explain", "nope", "-c", str(settings.source)])
    assert result.exit_code == 1 and "no order 'nope'" in result.output


async def test_rules_test_lists_what_a_rules_edit_would_move(hub, client, settings, tmp_path):
    await push(client, "paid", "3401", amount="900", province="广东")  # vip by big-south
    await push(client, "paid", "3402", amount="900", province="上海")  # general, default
    await push(client, "paid", "3403", amount="20", province="广东")  # general, default
    await routed(hub, "3401", "3402", "3403")
    edited = settings.source.read_text(encoding="utf-8").replace(
        'province = ["广东", "浙江"]', 'province = ["广东", "浙江", "上海"]'
    )
    candidate = tmp_path / "next.toml"
    candidate.write_text(edited, encoding="utf-8")
    result = CliRunner().invoke(cli, ["rules", "test", str(candidate), "-c", str(settings.source)])
    assert result.exit_code == 0, result.output
    assert "standard/acme/3402: general by no rule (default) -> vip by rule 'big-south'" in (
        result.output
    )
    assert "3401" not in result.output and "3403" not in result.output
    assert "3 routed orders checked, 1 would be routed differently (general -> vip: 1)" in (
        result.output
    )


async def test_rules_test_refuses_a_bad_file_with_its_line(hub, settings, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        settings.source.read_text(encoding="utf-8").replace('amount = "> 500"', 'amount = "lots"'),
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["rules", "test", str(bad), "-c", str(settings.source)])
    assert result.exit_code == 1
    assert f"the new rules do not load: {bad}:" in result.output
    assert "amount 'lots' is not a comparison" in result.output
