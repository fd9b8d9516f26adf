"""The surface every platform connector offers, and the pieces the pipeline hands it.

A connector is a small object with:
- `verify(msg)`: prove the message is genuine (signature, timestamp, app key); raise
  `Rejection` with a precise reason otherwise;
- `parse(msg)`: turn it into canonical `OrderEvent`s; raise `Rejection("malformed_body")`
  when it is not what the platform sends;
- `ack(msg)` / `reject(msg, rejection)`: the reply bytes in the platform's own shape;
- `sign(...)`: produce what the platform would send (for the simulator and replay).

Connectors never touch the store or the network on the ingest path; they are pure
functions of the inbound bytes and the shop's settings, which keeps them testable
against published vectors and keeps the hot path short.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from hub.model import OrderEvent

if TYPE_CHECKING:
    from hub.settings import Shop


class Rejection(Exception):
    """A message the hub will not accept, with a machine-readable reason.

    `status` is the HTTP status to answer with (always 4xx for a sender's mistake).
    `forensics` says what the evidence shows beyond the reason (for example which other
    signature algorithm matched), and is stored with the recording.
    """

    def __init__(
        self, reason: str, detail: str = "", *, status: int = 400, forensics: str | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.status = status
        self.forensics = forensics


@dataclass(frozen=True, slots=True)
class Inbound:
    """One inbound message as received: what verify/parse may look at."""

    platform: str
    shop: Shop
    method: str
    path: str
    tail: str  # the platform's own path after /webhooks/{platform}/{shop}, may be ""
    query: str
    headers: dict[str, str]  # lower-cased names; last value wins (all kept in the recording)
    body: bytes
    received_at: datetime
    content_type: str = ""

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default=())


def json_reply(status: int, value: Any) -> Reply:
    return Reply(status, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


class Connector(Protocol):
    name: ClassVar[str]
    # media types the platform posts with; a push with another type is refused (415)
    content_types: ClassVar[tuple[str, ...]]

    def verify(self, msg: Inbound) -> None: ...

    def parse(self, msg: Inbound) -> list[OrderEvent]: ...

    def ack(self, msg: Inbound) -> Reply: ...

    def reject(self, msg: Inbound | None, rejection: Rejection) -> Reply: ...


def generic_error(rejection: Rejection) -> Reply:
    """The hub's own error shape, for senders without one (and unknown platforms)."""
    return json_reply(
        rejection.status,
        {"error": {"reason": rejection.reason, "detail": rejection.detail}},
    )
