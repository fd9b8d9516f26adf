"""Demo traffic: realistic signed pushes into a running hub, one line printed per push.

Orders go created -> paid -> shipped, with the mistakes real senders make mixed in:
redeliveries of the same message (duplicates), a bad signature now and then, and
events that arrive out of order.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import httpx

from connectors import standard
from hub.settings import Settings

FLOW = ("order.created", "order.paid", "order.shipped")


def standard_push(
    secret: str, kind: str, order_id: str, amount: Decimal
) -> tuple[dict[str, str], bytes]:
    now = datetime.now(UTC)
    body = json.dumps(
        {
            "type": kind,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "data": {
                "order_id": order_id,
                "amount": str(amount),
                "currency": "CNY",
                "occurred_at": now.isoformat().replace("+00:00", "Z"),
            },
        },
        separators=(",", ":"),
    ).encode()
    return standard.sign_headers(secret, "msg_" + uuid.uuid4().hex, body), body


async def run(
    base_url: str,
    settings: Settings,
    *,
    rate: float = 2.0,
    count: int = 0,
    echo: Callable[[str], None] = print,
    seed: int | None = None,
) -> int:
    """Push until `count` pushes were sent (0: forever); returns how many were sent."""
    shops = [s for s in settings.shops.values() if s.platform == "standard"]
    if not shops:
        echo("demo: no shop with platform 'standard' in the config; nothing to push")
        return 0
    rng = random.Random(seed)
    open_orders: dict[str, tuple[int, Decimal]] = {}
    last: tuple[str, dict[str, str], bytes] | None = None
    sent = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=10, verify=False) as client:
        while not count or sent < count:
            shop = rng.choice(shops)
            roll = rng.random()
            if last is not None and roll < 0.06:
                label = "redelivery"
                path, headers, body = last
            else:
                if not open_orders or (len(open_orders) < 8 and rng.random() < 0.4):
                    order_id = str(rng.randrange(10**18, 10**19))  # 19 digits, past 2^53
                    open_orders[order_id] = (0, Decimal(rng.randrange(990, 99900)) / 100)
                order_id = rng.choice(list(open_orders))
                step, amount = open_orders[order_id]
                if step + 1 < len(FLOW) and rng.random() < 0.04:
                    step += 1  # skip ahead: the next event arrives before this one
                kind = FLOW[step]
                secret = shop.secret
                label = kind
                if roll > 0.97:
                    secret = "whsec_" + "d3JvbmctZGVtby1zZWNyZXQ="  # a sender with a stale secret
                    label = kind + " (bad signature)"
                headers, body = standard_push(secret, kind, order_id, amount)
                path = f"/webhooks/standard/{shop.name}"
                if step + 1 >= len(FLOW):
                    open_orders.pop(order_id)
                else:
                    open_orders[order_id] = (step + 1, amount)
                last = (path, headers, body)
            try:
                response = await client.post(path, content=body, headers=headers)
                answer = f"{response.status_code} {response.text[:50]}"
                echo(f"push {sent + 1:>5}  {label:<30} -> {answer}")
            except httpx.HTTPError as exc:
                echo(f"push {sent + 1:>5}  {label:<32} -> failed: {exc}")
            sent += 1
            await asyncio.sleep(1.0 / rate if rate > 0 else 0)
    return sent
