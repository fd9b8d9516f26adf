"""Small helpers for the platforms' wire formats: Beijing time text, JSON that keeps
big ids exact, business params as the SDKs send them, query windows, row fields."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hub.model import SHANGHAI, from_unix, shanghai_to_utc


def beijing(moment: datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A time as Beijing wall time text, whatever the host's time zone."""
    if moment.tzinfo is None:
        raise ValueError("aware datetime required")
    return moment.astimezone(SHANGHAI).strftime(fmt)


def load_json(raw: bytes) -> Any:
    """Parse a platform answer keeping big ids exact (ints stay ints, decimals Decimal)."""
    return json.loads(raw, parse_float=Decimal)


def compact(params: dict[str, Any]) -> dict[str, Any]:
    """Never send empty params: SDKs disagree on whether they are signed."""
    return {k: v for k, v in params.items() if v is not None and v != ""}


def param_text(value: Any) -> str:
    """A business param as the Java SDKs send it: primitives via String.valueOf
    (`true`/`false` for booleans), objects and lists as compact JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def windows(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive windows no longer than `size`."""
    out: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        stop = min(end, cursor + size)
        out.append((cursor, stop))
        cursor = stop
    return out


def first_of(row: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = row.get(key)
        if value not in (None, "", 0, "0"):
            return value
    return None


def to_utc(value: Any, *, unix: bool = False) -> datetime | None:
    """A platform time (Beijing wall-time text, or Unix seconds) as aware UTC."""
    if value in (None, "", 0, "0"):
        return None
    if unix or isinstance(value, int):
        return from_unix(value)
    return shanghai_to_utc(str(value))
