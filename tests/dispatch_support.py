"""Helpers for the dispatch tests: a config with groups, operators and rules, signed
Standard Webhooks pushes carrying order facts, and a wait for the post-commit stage."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from tests.helpers import order_body, signed

DISPATCH_TOML = """
[notify.channels.ops-wecom]
kind = "wecom"
key = "test-key-ops"
base_url = "http://127.0.0.1:9"    # never the real service from a test

[notify.channels.vip-dingtalk]
kind = "dingtalk"
access_token = "test-token-vip"
base_url = "http://127.0.0.1:9"

[dispatch]
default_group = "general"
notify = ["ops-wecom"]

[dispatch.groups.general]
escalate_after_minutes = 30

[dispatch.groups.vip]
escalate_after_minutes = 10
notify = ["vip-dingtalk"]
high_value = 1000

[dispatch.operators.ana]
groups = ["general", "vip"]
capacity = 2

[dispatch.operators.bo]
groups = ["general"]
capacity = 2

[dispatch.operators.cy]
groups = ["vip"]
capacity = 1

[[dispatch.rules]]
name = "presale-hold"
flags = "presale"
group = "general"
priority = -1

[[dispatch.rules]]
name = "big-south"
amount = "> 500"
province = ["广东", "浙江"]
group = "vip"
priority = 5

[[dispatch.rules]]
name = "phones"
category = "phones"
group = "vip"
priority = 1
"""

T = TypeVar("T")


def push_body(kind: str, order_id: str, amount: str = "99.00", **data: Any) -> bytes:
    """A Standard Webhooks order event whose `data` carries order facts."""
    return order_body(f"order.{kind}", order_id, amount=amount, **data)


async def push(
    client: httpx.AsyncClient, kind: str, order_id: str, amount: str = "99.00", **data: Any
) -> httpx.Response:
    body = push_body(kind, order_id, amount, **data)
    response = await client.post("/webhooks/standard/acme", content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    return response


async def eventually(check: Callable[[], Awaitable[T]], *, attempts: int = 200) -> T:
    """Wait (up to ~5 s) for the background stage to make `check` return a truthy value."""
    for _ in range(attempts):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.025)
    raise AssertionError("the background stage never got there")
