"""The events a poll proves: an order's current state names the transitions that
already happened, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hub.model import Kind, OrderEvent

if TYPE_CHECKING:
    from connectors.apiclient.client import BaseClient


@dataclass(frozen=True, slots=True)
class Milestone:
    """One transition an order's current state proves happened, and when."""

    kind: Kind
    at: datetime | None
    platform_type: str


def milestone_events(
    client: BaseClient,
    order_id: Any,
    milestones: list[Milestone],
    *,
    amount: Decimal | None,
    payload: Any,
) -> list[OrderEvent]:
    """Canonical events for every milestone with a known time: a poll sees only the
    current state, but the times in it say which earlier transitions happened, so a
    lost "paid" push is recovered even when the order has shipped since. Each event
    carries the default content key, which is what dedupes it against the push."""
    events: list[OrderEvent] = []
    for m in milestones:
        if m.at is None:
            continue
        events.append(
            OrderEvent(
                platform=client.platform,
                shop=client.shop.name,
                kind=m.kind,
                order_id=str(order_id),
                occurred_at=m.at,
                platform_type=m.platform_type,
                amount=amount,
                currency="CNY" if amount is not None else None,
                payload=payload,
                source="reconcile",
            )
        )
    return events
