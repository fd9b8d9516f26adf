"""Signature forensics: when a signature fails, find the near-miss that produced it.

A failed signature is usually not an attack but a mistake someone can fix, and the fix
depends on which mistake it was:
- the sender used another of the platform's algorithms (md5 vs hmac-md5 vs hmac-sha256,
  upper- vs lower-case hex, a re-serialised body instead of the raw bytes): "the
  platform changed its algorithm" or "the sender's SDK is configured differently";
- the sender used the secret of ANOTHER shop of the same platform: test and production
  secrets mixed up, or the push went to the wrong shop's URL.

Each connector describes its own variants; `explain` tries them (only on the failure
path, never on the hot path) and returns `label: sentence` for the request's
`forensics` column, the label first so Datasette queries can group on it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.settings import Shop

# what a variant signs with: (shop, secret) -> the signature text it would have sent,
# or None when the variant does not apply to this message
Signer = Callable[["Shop", str], "str | None"]

MAX_PEERS = 64  # bound the work on the failure path for hubs with very many shops


@dataclass(frozen=True, slots=True)
class Variant:
    label: str  # machine-readable: "hmac-sha256", "upper-hex", ...
    sentence: str  # what it means, for the person reading the recording
    sign: Signer


def md5_hex(text: bytes) -> str:
    return hashlib.md5(text).hexdigest()


def hmac_hex(key: str, message: bytes, algorithm: str) -> str:
    return hmac.new(key.encode(), message, algorithm).hexdigest()


def same(a: str | None, b: str) -> bool:
    """Constant-time comparison of signature texts (None never matches)."""
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def explain(
    offered: str,
    shop: Shop,
    peers: Sequence[Shop],
    correct: Signer,
    variants: Sequence[Variant],
) -> str | None:
    """Which variant, or which other shop's secret, produces `offered`; None if none does."""
    for variant in variants:
        for secret in shop.all_secrets():
            if same(variant.sign(shop, secret), offered):
                return f"{variant.label}: {variant.sentence}"
    for peer in peers[:MAX_PEERS]:
        for secret in peer.all_secrets():
            if same(correct(peer, secret), offered):
                return (
                    f"peer_secret:{peer.name}: signed with the secret of shop {peer.name!r} "
                    "(test/production secrets mixed up, or the push was sent to the wrong "
                    "shop's URL)"
                )
            for variant in variants:
                if same(variant.sign(peer, secret), offered):
                    return (
                        f"peer_secret:{peer.name}+{variant.label}: signed with the secret of "
                        f"shop {peer.name!r} and {variant.sentence}"
                    )
    return None


def peer_app_key(
    offered: str,
    app_key: str,
    peers: Sequence[Shop],
    correct: Signer,
    *,
    field: str,
    signature: str,
) -> str | None:
    """The message carries the app key of another configured shop: say which, and whether
    the signature verifies with that shop's secret (a push sent to the wrong shop's URL,
    or test and production apps mixed up). `field`/`signature` name the platform's own
    header or parameter in the sentence."""
    for peer in peers:
        if peer.app_key == app_key:
            signed = any(same(correct(peer, s), offered) for s in peer.all_secrets())
            return (
                f"peer_app_key:{peer.name}: {field} is the app key of shop {peer.name!r}"
                + (f" and {signature} verifies with its secret" if signed else "")
                + " (the push was sent to the wrong shop's URL, or test/production "
                "apps mixed up)"
            )
    return None
