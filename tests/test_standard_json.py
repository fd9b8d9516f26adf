"""The Standard Webhooks connector parses bodies with msgspec and falls back to the
standard library when msgspec refuses one: for any body, the value, the stored text and
the refusal must be exactly what the standard library alone gives (parse_float=Decimal)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connectors.base import Rejection
from connectors.standard import _load_json

STANDARD = json.JSONDecoder(parse_float=Decimal)


def reference(body: bytes) -> tuple[str, Any, str | None]:
    encoding = json.detect_encoding(body)
    try:
        text = body.decode(encoding, "surrogatepass")
        return "ok", STANDARD.decode(text), text if encoding == "utf-8" else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return "refused", f"invalid JSON: {exc}", None


def ours(body: bytes) -> tuple[str, Any, str | None]:
    try:
        value, text = _load_json(body)
    except Rejection as rejection:
        assert rejection.reason == "malformed_body"
        return "refused", rejection.detail, None
    return "ok", value, text


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 == Decimal('1.0') is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Decimal):
        return str(a) == str(b)
    return bool(a == b)


numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(str).filter(lambda t: "E" not in t),
    st.from_regex(r"-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,12})?([eE][-+]?[0-9]{1,4})?", fullmatch=True),
)
strings = st.text().map(lambda t: json.dumps(t, ensure_ascii=False))
escaped = st.text().map(json.dumps)  # \\uXXXX escapes, lone surrogates included
scalars = st.one_of(numbers, strings, escaped, st.sampled_from(["true", "false", "null"]))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(strings, inner), max_size=4).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
        ),
    ),
    max_leaves=12,
)


@given(documents, st.sampled_from(["", " ", "\n\t"]))
def test_valid_documents_parse_as_the_standard_library_parses_them(doc: str, pad: str) -> None:
    body = (pad + doc + pad).encode("utf-8", "surrogatepass")
    want, got = reference(body), ours(body)
    assert want[0] == got[0] == "ok"
    assert same(want[1], got[1]) and want[2] == got[2]


@given(documents, st.binary(max_size=3), st.integers(min_value=0, max_value=200))
def test_damaged_documents_are_refused_or_taken_alike(doc: str, junk: bytes, at: int) -> None:
    raw = doc.encode("utf-8", "surrogatepass")
    body = raw[:at] + junk + raw[at + len(junk) :]
    want, got = reference(body), ours(body)
    assert want[0] == got[0]
    if want[0] == "ok":
        assert same(want[1], got[1]) and want[2] == got[2]
    else:
        assert want[1] == got[1]  # the same words in the refusal


def test_what_only_the_standard_library_takes_is_still_taken() -> None:
    for body in (b'{"a": NaN}', b'{"a": "\\ud800"}', b'"\xed\xa0\x80"', b"\xef\xbb\xbf{}"):
        want, got = reference(body), ours(body)
        assert want[0] == got[0] == "ok", body
        assert want[2] == got[2]
