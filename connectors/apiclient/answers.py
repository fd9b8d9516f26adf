"""What a call answers: `Answer` (raw bytes and parsed body), `Page` (one page of the
incremental order query) and `LastGood`, the cache a read is served from while the
circuit is open."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.model import OrderEvent


@dataclass(slots=True)
class Answer:
    """A platform's answer to one call: the raw bytes (kept as evidence) and the parsed
    body. `stale` says it came from the last-good cache, not from the platform now."""

    method: str
    params: dict[str, Any]
    raw: bytes
    body: Any
    stale: bool = False

    def page(self, events: list[OrderEvent], window: tuple[datetime, datetime]) -> Page:
        return Page(self.method, self.params, self.raw, events, self.stale, window)


class LastGood:
    """The most recent successful answer per (shop, method, params), bounded LRU."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[str, Answer] = OrderedDict()

    @staticmethod
    def key(shop: str, method: str, params: dict[str, Any]) -> str:
        return f"{shop}\x1f{method}\x1f" + json.dumps(params, sort_keys=True, default=str)

    def put(self, key: str, answer: Answer) -> None:
        self._items[key] = answer
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, key: str) -> Answer | None:
        return self._items.get(key)


@dataclass(slots=True)
class Page:
    """One answer of the incremental order query: its bytes and the events in it."""

    method: str
    params: dict[str, Any]
    raw: bytes
    events: list[OrderEvent]
    stale: bool = False
    window: tuple[datetime, datetime] | None = None  # the time window it answers
    bad_rows: int = 0  # order rows that could not be turned into events
