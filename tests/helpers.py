"""Builders for signed pushes, shared by tests (the sender side is the official package)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from tests.conftest import DEMO_SECRET


def order_body(kind: str = "order.paid", order_id: Any = "1001", **data: Any) -> bytes:
    payload = {
        "type": kind,
        "timestamp": "2026-11-11T00:00:05Z",
        "data": {"order_id": order_id, "amount": "199.00", "currency": "CNY", **data},
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def signed(
    body: bytes,
    *,
    secret: str = DEMO_SECRET,
    msg_id: str | None = None,
    at: float | None = None,
) -> dict[str, str]:
    """Headers the official standardwebhooks package puts on `body`."""
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    signature = Webhook(secret).sign(msg_id, moment, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
