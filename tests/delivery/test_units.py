"""Pure pieces: the retry schedule, Retry-After, what an outcome does to a row, the
breaker's states, the [delivery] section."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from hub import settings as settings_mod
from hub.delivery.backoff import delay, retry_after
from hub.delivery.config import DeliveryConfig
from hub.delivery.destinations import Destinations
from hub.delivery.senders import Outcome
from hub.delivery.worker import decide
from hub.settings import ConfigError


def test_backoff_grows_exponentially_up_to_the_cap():
    cfg = DeliveryConfig(backoff_base=30, backoff_factor=2, backoff_max=100, jitter=0)
    assert [delay(cfg, n) for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


def test_jitter_only_shortens_and_stays_in_its_band():
    cfg = DeliveryConfig(backoff_base=100, backoff_factor=2, backoff_max=1e6, jitter=0.25)
    rng = random.Random(7)
    values = [delay(cfg, 1, rng) for _ in range(200)]
    assert all(75 <= v <= 100 for v in values)
    assert len({round(v, 3) for v in values}) > 100  # actually spread


def test_retry_after_seconds_and_http_date():
    now = datetime(2026, 11, 11, 0, 0, 0, tzinfo=UTC)
    assert retry_after("120") == 120
    assert retry_after("Wed, 11 Nov 2026 00:02:00 GMT", now=now) == 120
    assert retry_after("Wed, 11 Nov 2026 00:00:00 GMT", now=now) == 0  # already past
    assert retry_after("soon") is None and retry_after(None) is None


CFG = DeliveryConfig(max_attempts=3, backoff_base=10, jitter=0, retry_after_max=600)


def test_decide_counts_failures_towards_dead():
    fail = Outcome(False, detail="HTTP 500")
    assert decide(CFG, fail, 0, probe=False).state == "retry"
    assert decide(CFG, fail, 0, probe=False).next_in == 10
    assert decide(CFG, fail, 1, probe=False).next_in == 20
    assert decide(CFG, fail, 2, probe=False).state == "dead"


def test_decide_probe_failures_do_not_count():
    decision = decide(CFG, Outcome(False, unwell=True), 2, probe=True)
    assert decision.state == "retry" and not decision.counted


def test_decide_permanent_gone_and_retry_after():
    assert decide(CFG, Outcome(False, retryable=False), 0, probe=False).state == "dead"
    assert decide(CFG, Outcome(False, gone=True), 0, probe=False).state == "disabled"
    assert decide(CFG, Outcome(True), 0, probe=False).state == "done"
    assert decide(CFG, Outcome(False, retry_after=120), 0, probe=False).next_in == 120
    assert decide(CFG, Outcome(False, retry_after=1e6), 0, probe=False).next_in == 600


def test_breaker_opens_half_opens_and_closes():
    now = [0.0]
    dests = Destinations(
        DeliveryConfig(breaker_failures=2, breaker_cooldown=10, per_destination=3),
        clock=lambda: now[0],
    )
    assert dests.capacity() == {}
    dests.get("d")
    assert dests.capacity() == {"d": 3}
    assert dests.failed("d") is False
    assert dests.failed("d") is True  # opened
    assert dests.capacity() == {"d": 0}
    now[0] = 11
    assert dests.is_probe("d") and dests.capacity() == {"d": 1}
    dests.failed("d")  # failed probe: open again
    assert dests.capacity() == {"d": 0}
    now[0] = 22
    dests.succeeded("d")
    assert not dests.is_probe("d") and dests.capacity() == {"d": 3}


def test_slow_down_pauses_then_allows_one():
    now = [0.0]
    dests = Destinations(DeliveryConfig(per_destination=4), clock=lambda: now[0])
    dests.slow_down("d", 5)
    assert dests.capacity() == {"d": 0}
    now[0] = 6
    assert dests.capacity() == {"d": 1}
    dests.succeeded("d")
    assert dests.capacity() == {"d": 2}


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("max_attempt = 3", "delivery.max_attempt: unknown setting"),
        ("max_attempts = 0", "outside 1..100"),
        ("max_attempts = 2.5", "not a whole number"),
        ("allow_private = 1", "must be true or false"),
        ("timeout = 30\nlease_seconds = 20", "must exceed delivery.timeout"),
        ("shipment_users = 'erp'", "must be a list of names"),
    ],
)
def test_bad_delivery_section_fails_with_its_line(write_config, toml, message):
    path = write_config(f"[delivery]\n{toml}\n")
    with pytest.raises(ConfigError, match=message) as info:
        settings_mod.load(path, env={})
    assert ":" in str(info.value).split(" ")[0]  # file:line: prefix


def test_delivery_section_defaults_and_values(write_config):
    plain = settings_mod.load(write_config(""), env={})
    assert plain.sections["delivery"] == DeliveryConfig()
    tuned = settings_mod.load(write_config("[delivery]\nmax_attempts = 5\njitter = 0\n"), env={})
    assert tuned.sections["delivery"].max_attempts == 5


def test_every_delivery_setting_and_command_is_documented():
    from dataclasses import fields
    from pathlib import Path

    from hub.cli import cli

    doc = (Path(__file__).parents[2] / "docs" / "delivery.md").read_text(encoding="utf-8")
    for f in fields(DeliveryConfig):
        assert f"| {f.name} " in doc or f"{f.name} /" in doc or f"/ {f.name}" in doc, f.name
    for group in ("outbox", "subscriptions"):
        for command in cli.commands[group].commands:
            assert f"orderhook {group} {command}" in doc, (group, command)


def test_decide_a_call_held_back_by_the_client_breaker_is_not_counted():
    decision = decide(CFG, Outcome(False, sent=False), 2, probe=False)
    assert decision.state == "retry" and not decision.counted
    assert decision.next_in == CFG.breaker_cooldown
