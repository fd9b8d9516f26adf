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
from collections.abc import AsyncIterator
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
    # the other shops of the same platform (forensics: "signed with shop B's secret" is a
    # test/prod or URL mix-up); precomputed by the ingest path, so free per request
    peers: tuple[Shop, ...] = ()

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


# --- what the hub sends out through a connector -----------------------------------------


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message exactly as a platform would send it to us (simulator, replay, doctor)."""

    headers: dict[str, str]
    body: bytes
    tail: str = ""  # the platform's own path tail after /webhooks/{platform}/{shop}
    method: str = "POST"


# Optional connector methods (the sandbox uses them when present):
#   simulate(shop, kind: Kind, order_id: str, *, amount=None, occurred_at=None,
#            message_id=None) -> Outbound
#       a platform-faithful signed push for one canonical event;
#   variants(shop, outbound: Outbound) -> dict[str, Outbound]
#       the same message signed with each other algorithm the platform is known to use
#       (doctor: "which variant does the endpoint accept?").
#   resign(shop, outbound: Outbound) -> Outbound
#       the same message (id, body) signed again with shop.secret and a fresh timestamp
#       (replay and listen of recordings whose signatures expired or used another secret).
#   check_ack(status: int, body: bytes) -> str | None
#       what is wrong with an endpoint's answer from the platform's point of view, or
#       None (doctor; without it the answer is compared with `ack`);
#   ack_timeout: float
#       seconds the platform waits for the ack (doctor; 5 s when absent).


@dataclass(frozen=True, slots=True)
class SendResult:
    """Outcome of one outgoing call (platform API, notification, subscription delivery)."""

    ok: bool
    retryable: bool = True
    status: int | None = None
    code: str | None = None  # the service's own error code, as text
    detail: str = ""
    retry_after: float | None = None  # seconds, when the service said so


class ApiError(Exception):
    """A platform API call failed. Subclasses say what the caller should do.

    ApiError
    ├── AuthExpired        the shop's token is expired or revoked: re-authorise, no retry
    ├── RateLimited        slow down and retry later (retry_after when known)
    ├── InvalidParameter   our request is wrong: no retry, fix the data
    └── PlatformBusy       platform-side failure (5xx, timeout, isp.*): retry with backoff
    """

    retryable = False

    def __init__(self, code: str, message: str, *, raw: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.raw = raw


class AuthExpired(ApiError):
    pass


class RateLimited(ApiError):
    retryable = True

    def __init__(
        self, code: str, message: str, *, raw: Any = None, retry_after: float | None = None
    ) -> None:
        super().__init__(code, message, raw=raw)
        self.retry_after = retry_after


class InvalidParameter(ApiError):
    pass


class PlatformBusy(ApiError):
    retryable = True


class ApiClient(Protocol):
    """Each platform's `connectors/<platform>/api.py` exposes `Client(shop, *, transport=None)`
    implementing this; `connectors.api_client(shop)` builds one."""

    async def ship(self, order_id: str, carrier: str, tracking_no: str) -> SendResult: ...

    def changed_orders(self, start: datetime, end: datetime) -> AsyncIterator[OrderEvent]: ...

    async def aclose(self) -> None: ...
