"""Standard Webhooks: the spec's published vector, the official package as sender, rotation."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from standardwebhooks import Webhook

from connectors.base import Inbound, Rejection
from connectors.standard import connector, secret_bytes, signature
from hub.model import Kind
from hub.settings import Shop

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def inbound(body: bytes, headers: dict[str, str], shop: Shop | None = None) -> Inbound:
    return Inbound(
        platform="standard",
        shop=shop or Shop(name="acme", platform="standard", secret=SPEC_SECRET),
        method="POST",
        path="/webhooks/standard/acme",
        tail="",
        query="",
        headers=headers,
        body=body,
        received_at=datetime.now(UTC),
        content_type="application/json",
    )


def test_reproduces_the_specs_published_signature() -> None:
    # standard-webhooks spec test vector (also in the official libraries' test suites)
    got = signature(
        secret_bytes(SPEC_SECRET),
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        b'{"test": 2432232314}',
    )
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def official(body: bytes, secret: str = SPEC_SECRET, msg_id: str = "msg_1") -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body.decode()),
    }


def test_accepts_what_the_official_package_signs_and_parses_it_exactly() -> None:
    body = json.dumps(
        {
            "type": "order.refunded",
            "data": {
                "order_id": 12345678901234567890,
                "amount": 12.3,
                "occurred_at": "2026-11-11T00:00:05+08:00",
            },
        }
    ).encode()
    msg = inbound(body, official(body))
    connector.verify(msg)
    [event] = connector.parse(msg)
    assert event.kind is Kind.REFUNDED
    assert event.order_id == "12345678901234567890"  # past 2^53, exact
    assert event.amount == Decimal("12.3")
    assert event.occurred_at == datetime(2026, 11, 10, 16, 0, 5, tzinfo=UTC)


def test_refuses_a_tampered_body() -> None:
    body = b'{"type":"order.paid","data":{"order_id":"1"}}'
    headers = official(body)
    with pytest.raises(Rejection) as err:
        connector.verify(inbound(body.replace(b'"1"', b'"2"'), headers))
    assert err.value.reason == "bad_signature" and err.value.status == 401


def test_several_signatures_in_one_header_and_old_secrets_for_rotation() -> None:
    new = "whsec_" + "bmV3LXNlY3JldC1rZXktYnl0ZXM="
    body = b'{"type":"order.paid","data":{"order_id":"1"}}'
    ts = str(int(time.time()))
    both = f"{signature(secret_bytes(new), 'm', ts, body)} {signature(secret_bytes(SPEC_SECRET), 'm', ts, body)}"
    headers = {"webhook-id": "m", "webhook-timestamp": ts, "webhook-signature": both}
    connector.verify(inbound(body, headers))  # the shop still has the old secret only
    rotating = Shop(name="acme", platform="standard", secret=new, old_secrets=(SPEC_SECRET,))
    connector.verify(inbound(body, official(body), rotating))  # sender still on the old one


def test_our_signer_is_accepted_by_the_official_verifier() -> None:
    from connectors.standard import sign_headers

    body = b'{"type":"order.paid","data":{"order_id":"1"}}'
    assert Webhook(SPEC_SECRET).verify(body, sign_headers(SPEC_SECRET, "m9", body)) is not None
