"""The headers of a recorded request are stored as `json.dumps(pairs, ensure_ascii=False)`
of the pairs as text; the store builds that text by joining when nothing needs escaping.
Whatever the bytes, the stored text must be the encoder's, byte for byte."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from hub.store.ingest_sql import headers_json

ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def as_text(pairs: list) -> list:  # type: ignore[type-arg]
    return [[x.decode("latin-1") if isinstance(x, bytes) else x for x in p] for p in pairs]


raw_pairs = st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=40)), max_size=8)
text_pairs = st.lists(st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=8)


@given(raw_pairs)
def test_raw_header_bytes_are_stored_as_the_encoder_writes_them(pairs: list) -> None:  # type: ignore[type-arg]
    assert headers_json(pairs) == ENCODE(as_text(pairs))


@given(text_pairs)
def test_text_headers_are_stored_as_the_encoder_writes_them(pairs: list) -> None:  # type: ignore[type-arg]
    assert headers_json(pairs) == ENCODE(pairs)


def test_quotes_backslashes_controls_and_odd_pairs_are_escaped_as_before() -> None:
    cases = [
        [(b"x-q", b'say "hi"')],
        [(b"x-b", b"a\\b")],
        [(b"x-c", b"tab\there"), (b"host", b"h")],
        [(b"x-l", b"caf\xe9")],
        [("x-u", "\u2028\ud800")],
        [("a", "b", "c")],
        [("only",)],
        [],
    ]
    for pairs in cases:
        assert headers_json(pairs) == ENCODE(as_text(pairs)), pairs
