"""Routing rules: validated at load with file, line, rule name and reason; evaluated in
file order; explained condition by condition."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub import settings as settings_mod
from hub.dispatch import facts as order_facts
from hub.dispatch import rules
from hub.settings import ConfigError
from tests.dispatch_support import DISPATCH_TOML

BASE = '[shops.acme]\nplatform = "standard"\nsecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"\n'


def config(extra: str = DISPATCH_TOML):
    return settings_mod.parse(BASE + extra, env={}).sections["dispatch"]


def facts(**kw):
    return rules.order_facts({"platform": "standard", "shop": "acme", **kw})


def test_first_matching_rule_wins_in_file_order():
    cfg = config()
    big_phone = facts(amount="900", facts={"province": "广东", "categories": ["phones"]})
    assert rules.route(cfg, big_phone) == rules.Route("vip", "big-south", 5)
    presale = facts(amount="900", facts={"province": "广东", "flags": ["presale"]})
    assert rules.route(cfg, presale) == rules.Route("general", "presale-hold", -1)
    small_phone = facts(amount="20", facts={"categories": ["cases", "phones"]})
    assert rules.route(cfg, small_phone).rule == "phones"
    assert rules.route(cfg, facts(amount="20")) == rules.Route("general", None, 0)


@pytest.mark.parametrize(
    ("written", "inside", "outside"),
    [
        ("> 500", ["500.01"], ["500", "10"]),
        (">= 500", ["500"], ["499.99"]),
        ("< 100", ["99.99"], ["100"]),
        ("<= 100", ["100"], ["100.01"]),
        ("== 99.9", ["99.90"], ["99.91"]),
        ("100..500", ["100", "500"], ["99.99", "500.01"]),
    ],
)
def test_amount_comparisons(written, inside, outside):
    cfg = config(
        f'[dispatch.groups.x]\n[[dispatch.rules]]\nname = "r"\namount = "{written}"\ngroup = "x"\n'
    )
    for amount in inside:
        assert rules.route(cfg, facts(amount=amount)).rule == "r", amount
    for amount in outside:
        assert rules.route(cfg, facts(amount=amount)).rule is None, amount
    assert rules.route(cfg, facts(amount=None)).rule is None


def test_explain_names_the_failed_condition_of_each_rule_above():
    cfg = config()
    steps, chosen = rules.explain(
        cfg, facts(amount="20", facts={"province": "广东", "categories": ["phones"]})
    )
    assert chosen.rule == "phones"
    lines = [step.describe() for step in steps]
    assert lines[0].startswith("rule 'presale-hold' (line ")
    assert "flags in [presale], the order has (none)" in lines[0]
    assert "amount > 500, the order has 20" in lines[1]
    assert "MATCHED -> group vip, priority 1" in lines[2]
    # the line numbers point at each rule's own [[dispatch.rules]] header
    text = (BASE + DISPATCH_TOML).splitlines()
    assert all(text[step.rule.line - 1] == "[[dispatch.rules]]" for step in steps)


@pytest.mark.parametrize(
    ("rule_body", "message"),
    [
        ('name = "a"\ngroup = "nowhere"', "rule dispatch.rules[2] 'a': no group 'nowhere'"),
        ('name = "a"\ngroup = "vip"\namount = ">> 5"', "amount '>> 5' is not a comparison"),
        ('name = "a"\ngroup = "vip"\namount = "9..1"', "the range is empty"),
        ('name = "a"\ngroup = "vip"\nprovnce = "x"', "unknown condition or setting 'provnce'"),
        ('group = "vip"', "'name' is required"),
        ('name = "first"\ngroup = "vip"', "another rule has this name"),
        ('name = "a"\ngroup = "vip"\nprovince = []', "province: an empty list matches nothing"),
        ('name = "a"\ngroup = "vip"\npriority = "high"', "'priority' must be a whole number"),
    ],
)
def test_bad_rules_are_refused_with_file_line_rule_and_reason(tmp_path, rule_body, message):
    text = (
        BASE + "[dispatch.groups.vip]\n\n"
        '[[dispatch.rules]]\nname = "first"\ngroup = "vip"\n\n'
        f"[[dispatch.rules]]\n{rule_body}\n"
    )
    path = tmp_path / "hub.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        settings_mod.load(path, env={})
    error = str(caught.value)
    assert message in error
    line = int(error.split(":")[1])
    second_rule = [i for i, t in enumerate(text.splitlines(), 1) if t == "[[dispatch.rules]]"][1]
    assert line >= second_rule, error  # the faulty rule's own lines, not the first rule's
    assert error.startswith(f"{path}:")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[dispatch]\nroute_on = ["payed"]', "'payed' is not an order status"),
        ("[dispatch.groups.g]\nescalate_after_minutes = 0", "must be a positive number"),
        ('[dispatch.operators.ana]\ngroups = ["ghost"]', "no group 'ghost'"),
        (
            '[dispatch.operators.ana]\ngroups = "general"\ncapacity = -1',
            "capacity: must be a whole number",
        ),
        (
            '[dispatch.operators.ana]\ngroups = "general"\nstatus = "busy"',
            "status: one of working, away, off",
        ),
        ("[dispatch]\nrouting = 1", "dispatch.routing: unknown setting"),
        ("[dispatch.operators.ana]\ncapacity = 3", "groups: required"),
    ],
)
def test_bad_groups_and_operators_are_refused(extra, message):
    with pytest.raises(ConfigError, match=message):
        config(extra)


def test_channels_must_be_notify_channels(tmp_path):
    text = BASE + DISPATCH_TOML.replace(
        'notify = ["vip-dingtalk"]', 'notify = ["vip-dingtalk", "vip-dingtlak"]'
    )
    path = tmp_path / "hub.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        settings_mod.load(path, env={})
    error = str(caught.value)
    assert (
        "dispatch.groups.vip.notify: 'vip-dingtlak' is not a channel of [notify.channels]" in error
    )
    assert "(known: ops-wecom, vip-dingtalk)" in error
    line = int(error.split(":")[1])
    assert text.splitlines()[line - 1].startswith('notify = ["vip-dingtalk", "vip-dingtlak"]')


def test_no_dispatch_section_means_one_default_group():
    cfg = settings_mod.parse(BASE, env={}).sections["dispatch"]
    assert cfg.default_group == "general" and cfg.rules == ()
    assert cfg.route_on == ("paid",)
    assert config().group("vip").high_value == Decimal("1000")


def test_lines_are_found_past_trailing_comments_and_the_example_config_loads():
    from importlib.resources import files

    text = files("hub").joinpath("example.toml").read_text(encoding="utf-8")
    cfg = settings_mod.parse(text, env={}).sections["dispatch"]
    (rule,) = cfg.rules
    assert text.splitlines()[rule.line - 1].startswith("[[dispatch.rules]]  ")
    assert rules.route(cfg, facts(amount="500")).group == "priority"
    assert set(cfg.operators) == {"ana", "bo"}


VALUES = ["a", "b", "c", "广东"]


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "province": st.lists(st.sampled_from(VALUES), min_size=1, max_size=2),
                "sku": st.lists(st.sampled_from(VALUES), min_size=1, max_size=3),
                "flags": st.sampled_from(VALUES),
                "amount": st.sampled_from(["> 5", "<= 5", "1..9"]),
            },
        ),
        max_size=8,
    ),
    province=st.none() | st.sampled_from(VALUES),
    skus=st.lists(st.sampled_from(VALUES), max_size=3),
    flags=st.lists(st.sampled_from(VALUES), max_size=2),
    amount=st.none() | st.integers(0, 12),
)
def test_the_rule_index_picks_what_walking_every_rule_picks(specs, province, skus, flags, amount):
    text = "[dispatch.groups.g]\n"
    for n, spec in enumerate(specs):
        text += f'[[dispatch.rules]]\nname = "r{n}"\ngroup = "g"\n'
        for key, value in spec.items():
            text += f"{key} = {json.dumps(value, ensure_ascii=False)}\n"
    cfg = config(text)
    order_facts = {"skus": skus, "flags": flags}
    if province is not None:
        order_facts["province"] = province
    seen = facts(amount=amount, facts=order_facts)
    _steps, walked = rules.explain(cfg, seen)
    assert rules.route(cfg, seen) == walked


def test_every_dispatch_setting_and_condition_is_documented():
    from pathlib import Path

    from hub.dispatch import config as dispatch_config

    doc = (Path(__file__).parent.parent / "docs" / "dispatch.md").read_text(encoding="utf-8")
    keys = (
        dispatch_config.TOP_KEYS
        | dispatch_config.GROUP_KEYS
        | dispatch_config.OPERATOR_KEYS
        | dispatch_config.RULE_KEYS
    ) - {"groups", "operators", "rules"}
    missing = sorted(k for k in keys if f"`{k}`" not in doc and f"\n{k} =" not in doc)
    assert missing == []
    for command in ("orderhook rules explain", "orderhook rules test"):
        assert command in doc


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # what the fast parser takes
        (
            '{"data":{"province":" 广东 ","items":[{"sku":7},{"sku":"7"},{"sku":" "}]}}',
            {"province": "广东", "skus": ["7"], "categories": []},
        ),
        ('{"province":"a","province":"b","flags":"vip"}', {"province": "b", "flags": ["vip"]}),
        (
            '{"province":123456789012345678901234567890}',
            {"province": "123456789012345678901234567890"},
        ),
        # what it refuses: the standard library's values, as before
        ('{"province":NaN,"city":"x"}', {"city": "x"}),
        ('{"province":1e400,"city":"y"}', {"city": "y"}),
        ('{"city":"\\ud800"}', {"city": "\ud800"}),
        (None, {}),
        ("[1, 2]", {}),
    ],
)
def test_order_facts_from_a_stored_payload(payload, expected):
    assert order_facts.from_payload("standard", payload) == expected
