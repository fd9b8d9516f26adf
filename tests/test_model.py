from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from hub.model import (
    Kind,
    OrderEvent,
    canonical_json,
    fen_to_yuan,
    from_unix,
    shanghai_to_utc,
    to_decimal,
)


def test_beijing_wall_time_becomes_utc_eight_hours_earlier() -> None:
    # Singles' Day midnight in Beijing is 16:00 UTC the day before
    assert shanghai_to_utc("2026-11-11 00:00:05") == datetime(2026, 11, 10, 16, 0, 5, tzinfo=UTC)


def test_time_with_offset_is_converted_not_reinterpreted() -> None:
    assert shanghai_to_utc("2022-09-02T10:27:50+08:00") == datetime(
        2022, 9, 2, 2, 27, 50, tzinfo=UTC
    )
    assert shanghai_to_utc("2022-09-02T10:27:50+00:00") == datetime(
        2022, 9, 2, 10, 27, 50, tzinfo=UTC
    )


def test_unix_seconds_and_millis() -> None:
    assert from_unix("1700000000") == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert from_unix(1700000000123, millis=True).microsecond == 123000


def test_amounts_stay_exact() -> None:
    assert to_decimal("0.1") + to_decimal("0.2") == Decimal("0.3")
    assert fen_to_yuan(1990) == Decimal("19.90")
    assert to_decimal(None) is None
    with pytest.raises(ValueError):
        to_decimal("twelve")


def event(**kw: object) -> OrderEvent:
    base: dict[str, object] = dict(
        platform="p",
        shop="s",
        kind=Kind.PAID,
        order_id="4881995531871913482",
        occurred_at=datetime(2026, 1, 1, 8, 0, 0, 500000, tzinfo=UTC),
        platform_type="101",
    )
    base.update(kw)
    return OrderEvent(**base)  # type: ignore[arg-type]


def test_same_change_from_two_paths_has_one_key() -> None:
    push = event(platform_type="101", source="push", payload={"a": 1})
    poll = event(
        platform_type="2",
        source="reconcile",
        payload={"b": 2},
        occurred_at=datetime(2026, 1, 1, 8, 0, 0, tzinfo=UTC),
    )
    assert push.dedupe_key == poll.dedupe_key
    assert event(kind=Kind.SHIPPED).dedupe_key != push.dedupe_key
    assert event(order_id="4881995531871913483").dedupe_key != push.dedupe_key


def test_unmapped_types_are_told_apart() -> None:
    a = event(kind=Kind.OTHER, platform_type="113")
    b = event(kind=Kind.OTHER, platform_type="104")
    assert a.dedupe_key != b.dedupe_key


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        event(occurred_at=datetime(2026, 1, 1))


def test_canonical_json_keeps_decimals_and_chinese_text() -> None:
    assert canonical_json({"b": Decimal("12.50"), "a": "上海"}) == '{"a":"上海","b":"12.50"}'
