"""Demo traffic: realistic signed pushes into a running hub, one line printed per push.

Every configured shop whose connector can `simulate()` a push takes part. Orders go
created -> paid -> shipped, with the mistakes real senders make mixed in: redeliveries of
the same message (duplicates), a sender still on an old secret (bad signature), and events
that arrive out of order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable
from decimal import Decimal

import httpx

import connectors
from connectors.base import Outbound
from hub.model import Kind
from hub.settings import Settings, Shop

FLOW = (Kind.CREATED, Kind.PAID, Kind.SHIPPED)


def _push(shop: Shop, kind: Kind, order_id: str, amount: Decimal) -> Outbound | None:
    """The platform's own push for this event, or None when the platform never sends it."""
    try:
        return connectors.get(shop.platform).simulate(shop, kind, order_id, amount=amount)  # type: ignore[union-attr]
    except ValueError:
        return None


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
    shops = [s for s in settings.shops.values() if hasattr(connectors.get(s.platform), "simulate")]
    if not shops:
        echo("demo: no shop whose platform can be simulated; nothing to push")
        return 0
    rng = random.Random(seed)
    open_orders: dict[tuple[str, str], tuple[int, Decimal]] = {}
    last: tuple[str, Outbound] | None = None
    sent = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=10, verify=False) as client:
        while not count or sent < count:
            roll = rng.random()
            if last is not None and roll < 0.06:
                label, (path, push) = "redelivery", last
            else:
                shop = rng.choice(shops)
                if (len(open_orders) < 8 and rng.random() < 0.4) or not open_orders:
                    order_id = str(rng.randrange(10**18, 10**19))  # 19 digits, past 2^53
                    open_orders[(shop.name, order_id)] = (
                        0,
                        Decimal(rng.randrange(990, 99900)) / 100,
                    )
                key = rng.choice(list(open_orders))
                shop = settings.shops[key[0]]
                step, amount = open_orders[key]
                if step + 1 < len(FLOW) and rng.random() < 0.04:
                    step += 1  # skip ahead: the next event arrives before this one
                kind = FLOW[step]
                sender = shop
                label = f"{shop.name} {kind.value}"
                if roll > 0.97:
                    sender = dataclasses.replace(shop, secret="stale-" + shop.secret)
                    label += " (old secret)"
                if step + 1 >= len(FLOW):
                    open_orders.pop(key)
                else:
                    open_orders[key] = (step + 1, amount)
                made = _push(sender, kind, key[1], amount)
                if made is None:
                    continue
                path = f"/webhooks/{shop.platform}/{shop.name}{made.tail}"
                push = made
                last = (path, push)
            try:
                response = await client.request(
                    push.method, path, content=push.body, headers=push.headers
                )
                answer = f"{response.status_code} {response.text[:50]}"
            except httpx.HTTPError as exc:
                answer = f"failed: {exc}"
            sent += 1
            echo(f"push {sent:>5}  {label:<36} -> {answer}")
            await asyncio.sleep(1.0 / rate if rate > 0 else 0)
    return sent
