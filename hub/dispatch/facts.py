"""Order facts: the small, normalised view of an order that routing rules look at.

Platforms name these things differently; a connector may define
`order_facts(payload) -> dict` to translate its own payload. Without one, the payload's
`data` object (the Standard Webhooks envelope) or the payload itself is read for:

    province, city            text
    warehouse                 text (also accepted: stock_location)
    items                     [{sku, category, qty}, ...]
    buyer_tags, flags         a list of text (a single text is one tag)

Facts from later events of the same order are merged over earlier ones (a key an event
does not mention keeps its earlier value), so an address change moves the province.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import msgspec

import connectors

log = logging.getLogger("orderhook.dispatch")

TEXT_KEYS = ("province", "city", "warehouse")
LIST_KEYS = ("skus", "categories", "buyer_tags", "flags")


# The stage reads every event's payload again (the writer parsed it, but sends only its
# text): with the standard library that parse was a fifth of the stage's CPU per event.
# msgspec gives the same values for the JSON it accepts (floats as floats, big integers,
# the last of repeated keys); what it refuses (NaN, lone surrogates, 1e400, deep nesting)
# goes to the standard library, which parses it, or fails on it, as before.
_FAST = msgspec.json.Decoder()


def from_payload(platform: str, text: str | None) -> dict[str, Any]:
    """`extract` from an event's stored payload (JSON text; None is JSON's null)."""
    if text is None:
        return extract(platform, None)
    try:
        payload = _FAST.decode(text)
    except Exception:  # see above: the standard library decides
        payload = json.loads(text)
    return extract(platform, payload)


def extract(platform: str, payload: Any) -> dict[str, Any]:
    """Facts one event's payload states (keys it does not state are absent)."""
    connector = connectors.get(platform)
    own = getattr(connector, "order_facts", None)
    try:
        raw = own(payload) if own is not None else _generic(payload)
    except Exception:  # one odd payload must not stop the stage for every order after it
        log.exception(
            "order facts of a %s payload could not be read; routing without them", platform
        )
        raw = {}
    return normalise(raw if isinstance(raw, dict) else {})


def _generic(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        return {}
    data = payload.get("data")
    source = data if isinstance(data, dict) else payload
    out = {key: source[key] for key in (*TEXT_KEYS, "buyer_tags", "flags") if key in source}
    if "warehouse" not in out and "stock_location" in source:
        out["warehouse"] = source["stock_location"]
    items = source.get("items")
    if isinstance(items, list):
        dicts = [item for item in items if isinstance(item, dict)]
        out["skus"] = [item.get("sku") for item in dicts]
        out["categories"] = [item.get("category") for item in dicts]
    return out


def normalise(raw: dict[str, Any]) -> dict[str, Any]:
    """Text stripped, lists of distinct non-empty texts; unknown keys dropped."""
    out: dict[str, Any] = {}
    for key in TEXT_KEYS:
        text = _text(raw.get(key))
        if text:
            out[key] = text
    for key in LIST_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        values = [value] if isinstance(value, str | int) else value
        if isinstance(values, list):
            texts = (_text(v) for v in values)
            out[key] = list(dict.fromkeys(t for t in texts if t))
    return out


def _text(value: Any) -> str | None:
    """A text or a number (bool included, as it always was) stripped; None for others."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int):
        return str(value).strip()
    return None


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {**old, **new}
