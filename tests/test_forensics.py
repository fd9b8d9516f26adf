"""Signature forensics on the Standard Webhooks connector (the other platforms' are in
their own test files): another shop's secret, the spec's near-misses, simulate/variants."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from connectors import forensics
from connectors.standard import connector, secret_bytes
from hub import settings as settings_mod
from hub.model import Kind
from hub.runtime import Hub
from hub.settings import Settings, Shop
from hub.store import queries
from tests.conftest import DEMO_SECRET
from tests.helpers import order_body, signed

pytestmark = pytest.mark.anyio

STAGING_SECRET = "whsec_" + base64.b64encode(b"staging-key-0123456789abcdef").decode()
OTHER_PLATFORM_SECRET = "not-base64-at-all!"

EXTRA = f"""
[shops.acme-staging]
platform = "standard"
secret = "{STAGING_SECRET}"
"""


@pytest.fixture
def settings(write_config: Callable[[str], Path]) -> Settings:
    return settings_mod.load(write_config(EXTRA), env={})


async def last_request(hub: Hub) -> dict:
    return (await hub.store.read(lambda c: queries.list_requests(c, limit=1)))[0]


async def test_signed_with_the_staging_shops_secret_is_named(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    body = order_body()
    r = await client.post(
        "/webhooks/standard/acme", content=body, headers=signed(body, secret=STAGING_SECRET)
    )
    assert r.status_code == 401
    req = await last_request(hub)
    assert req["reason"] == "bad_signature"
    assert req["forensics"].startswith("peer_secret:acme-staging: ")


async def test_hex_digest_instead_of_base64_is_named(client: httpx.AsyncClient, hub: Hub) -> None:
    body = order_body()
    h = signed(body)
    signed_text = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + body
    digest = hmac.new(secret_bytes(DEMO_SECRET), signed_text, hashlib.sha256).hexdigest()
    h["webhook-signature"] = "v1," + digest
    assert (
        await client.post("/webhooks/standard/acme", content=body, headers=h)
    ).status_code == 401
    assert (await last_request(hub))["forensics"].startswith("hex-digest: ")


async def test_simulate_is_accepted_and_every_variant_is_identified(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    shop = hub.settings.shops["acme"]
    out = connector.simulate(shop, Kind.SHIPPED, "991", amount=Decimal("5.00"))
    r = await client.post("/webhooks/standard/acme", content=out.body, headers=out.headers)
    assert r.status_code == 200, r.text
    [event] = await hub.store.read(queries.events_for_order, "standard", "acme", "991")
    assert (event["kind"], event["amount"]) == ("shipped", "5.00")
    variants = connector.variants(shop, out)
    assert set(variants) == {"secret-text-key", "hex-digest", "body-only"}
    for label, variant in variants.items():
        r = await client.post(
            "/webhooks/standard/acme", content=variant.body, headers=variant.headers
        )
        assert r.status_code == 401
        assert (await last_request(hub))["forensics"].startswith(label + ": ")


def test_explain_finds_nothing_for_a_random_signature_and_skips_unusable_peer_secrets() -> None:
    shop = Shop(name="a", platform="x", secret="s1")
    peer = Shop(name="b", platform="x", secret=OTHER_PLATFORM_SECRET)

    def correct(s: Shop, secret: str) -> str | None:
        return None if secret == OTHER_PLATFORM_SECRET else forensics.md5_hex(secret.encode())

    assert forensics.explain("f" * 32, shop, [peer], correct, []) is None
    peer_ok = Shop(name="c", platform="x", secret="s2")
    found = forensics.explain(forensics.md5_hex(b"s2"), shop, [peer, peer_ok], correct, [])
    assert found is not None and found.startswith("peer_secret:c: ")


async def test_peers_are_precomputed_per_platform_and_follow_a_reloaded_config(
    hub: Hub, write_config: Callable[[str], Path]
) -> None:
    from hub.ingest import peers

    acme = hub.settings.shops["acme"]
    assert [p.name for p in peers(hub.settings, acme)] == ["acme-staging"]
    assert peers(hub.settings, acme) is peers(hub.settings, acme)  # a lookup, not a rebuild
    hub.settings = settings_mod.load(write_config(""), env={})  # staging shop removed
    assert peers(hub.settings, hub.settings.shops["acme"]) == ()
