"""Standard Webhooks signatures on outgoing deliveries, with secret rotation.

Signed with the official `standardwebhooks` package (the same code receivers verify
with). During a rotation's grace period every delivery carries two signatures, new
then old, space-separated in `webhook-signature` (spec: "the webhook is signed both
using the current key, and using an old key (for a set period of time)"), so a receiver
can switch its secret at any moment of the window without a failed delivery.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks import Webhook

from hub.model import iso_utc, utcnow

SECRET_BYTES = 32  # the spec asks for at least 24 random bytes


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_secret(secret: str) -> None:
    """ValueError unless `secret` is a usable `whsec_` secret of at least 24 bytes."""
    if not secret.startswith("whsec_"):
        raise ValueError("a subscription secret is 'whsec_' followed by base64")
    text = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        raise ValueError("a subscription secret is 'whsec_' followed by base64") from None
    if len(key) < 24:
        raise ValueError("a subscription secret needs at least 24 bytes (Standard Webhooks)")


def headers(
    msg_id: str, body: str, signing_secrets: list[str], *, now: datetime | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (its own timestamp)."""
    moment = datetime.fromtimestamp(int((now or datetime.now(UTC)).timestamp()), UTC)
    signatures = [Webhook(secret).sign(msg_id, moment, body) for secret in signing_secrets]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def signing_secrets(subscription: dict[str, object], *, now: datetime | None = None) -> list[str]:
    """The secrets to sign with now: the current one, plus the old one during its grace."""
    out = [str(subscription["secret"])]
    old, until = subscription.get("old_secret"), subscription.get("old_secret_until")
    if old and until and str(until) > iso_utc(now or utcnow()):
        out.append(str(old))
    return out
