"""Douyin's push signature: event-sign = md5(app_key + raw body + app_secret), lower-case
hex, over the body bytes exactly as received (docs/connectors/douyin.md)."""

from __future__ import annotations

from connectors.forensics import md5_hex


def pattern(app_key: str | None, body: bytes, secret: str) -> bytes:
    return (app_key or "").encode() + body + secret.encode()


def event_sign(app_key: str | None, secret: str, body: bytes) -> str:
    return md5_hex(pattern(app_key, body, secret))
