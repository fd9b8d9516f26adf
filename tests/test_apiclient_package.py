"""The shared API client layer is a package in `connectors/` but not a platform: the
registry must not offer it, and a push addressed to it is refused like any unknown
platform."""

from __future__ import annotations

import httpx
import pytest

import connectors
from tests.helpers import order_body, signed

pytestmark = pytest.mark.anyio


async def test_a_push_to_the_shared_client_layer_is_an_unknown_platform(
    client: httpx.AsyncClient,
) -> None:
    body = order_body()
    r = await client.post("/webhooks/apiclient/acme", content=body, headers=signed(body))
    assert r.status_code == 404, r.text
    error = r.json()["error"]
    assert error["reason"] == "unknown_platform"
    known = error["detail"].split("known:")[1]
    assert "apiclient" not in known and "taobao" in known
    assert "apiclient" not in connectors.names()
    assert {"jd", "taobao", "douyin", "pinduoduo"} <= set(connectors.names())
