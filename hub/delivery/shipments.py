"""Reverse sync: a shipment reported by the ERP or the warehouse becomes the platform's
own "mark shipped / upload tracking number" call, queued through the outbox in the same
transaction as the shipment row. The worker settles the row and writes the platform's
answer (success, or its error code and message) back onto the shipment."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from hub.store import delivery_sql
from hub.store.outbox_sql import enqueue

MAX_FIELD = 64


@dataclass(frozen=True)
class Shipment:
    carrier: str
    tracking_no: str

    @classmethod
    def from_json(cls, data: Any) -> Shipment:
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object with carrier and tracking_no")
        carrier = data.get("carrier")
        tracking = data.get("tracking_no", data.get("tracking_number"))
        for name, value in (("carrier", carrier), ("tracking_no", tracking)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} is required (a non-empty string)")
            if len(value.strip()) > MAX_FIELD or any(c.isspace() for c in value.strip()):
                raise ValueError(f"{name} must be at most {MAX_FIELD} characters, no spaces")
        assert isinstance(carrier, str) and isinstance(tracking, str)
        return cls(carrier.strip(), tracking.strip())


def request_shipment(
    conn: sqlite3.Connection,
    platform: str,
    shop: str,
    order_id: str,
    shipment: Shipment,
    requested_by: str,
) -> tuple[dict[str, Any], bool]:
    """Queue the ship call; (shipment row, True) — or the earlier identical one and False."""
    existing = delivery_sql.find_shipment(
        conn, platform, shop, order_id, shipment.carrier, shipment.tracking_no
    )
    if existing is not None:
        return existing, False
    outbox_id = enqueue(
        conn,
        kind="platform_call",
        target=f"{platform}:{shop}",
        payload={
            "call": "ship",
            "order_id": order_id,
            "carrier": shipment.carrier,
            "tracking_no": shipment.tracking_no,
        },
        order_key=f"{platform}:{shop}:{order_id}",
    )
    shipment_id = delivery_sql.add_shipment(
        conn,
        platform=platform,
        shop=shop,
        order_id=order_id,
        carrier=shipment.carrier,
        tracking_no=shipment.tracking_no,
        outbox_id=outbox_id,
        requested_by=requested_by,
    )
    row = delivery_sql.get_shipment(conn, shipment_id)
    assert row is not None
    return row, True
