"""Helpers for the dispatch tests: a config with groups, operators and rules, signed
Standard Webhooks pushes carrying order facts, and a wait for the post-commit stage."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from connectors import standard

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

DISPATCH_TOML = """
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
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    envelope = {
        "type": f"order.{kind}",
        "timestamp": now,
        "data": {"order_id": order_id, "amount": amount, "currency": "CNY", **data},
    }
    return json.dumps(envelope, ensure_ascii=False).encode()


async def push(
    client: httpx.AsyncClient, kind: str, order_id: str, amount: str = "99.00", **data: Any
) -> httpx.Response:
    body = push_body(kind, order_id, amount, **data)
    headers = standard.sign_headers(SECRET, "msg_" + uuid.uuid4().hex, body)
    response = await client.post("/webhooks/standard/acme", content=body, headers=headers)
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
