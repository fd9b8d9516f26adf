"""Daojia's signature: MD5(secret + name1value1name2value2... + secret), upper-case hex,
over every form parameter but `sign`, names in ordinal order (docs/connectors/jddj.md)."""

from __future__ import annotations

import hashlib


def sign_string(params: dict[str, str], *, keep_empty: bool = False) -> str:
    """name1value1name2value2... over every parameter but `sign`, names in ordinal order.

    JD's Java SDK leaves empty values out; PHP senders put the bare name in (keep_empty)."""
    return "".join(
        name + value
        for name, value in sorted(params.items())
        if name != "sign" and (keep_empty or value)
    )


def sign(params: dict[str, str], secret: str, *, keep_empty: bool = False) -> str:
    """MD5(secret + string + secret), upper-case hex: what Daojia puts in `sign`."""
    text = secret + sign_string(params, keep_empty=keep_empty) + secret
    return hashlib.md5(text.encode()).hexdigest().upper()
