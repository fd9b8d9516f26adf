"""Many rows per statement, for every writer that works a batch at a time (ingest, stages).

Each statement step lets go of the GIL and has to win it back from the event loop, and
each statement costs its own prepare and bind in Python: a stage that writes a batch in
a handful of statements instead of several per event holds the writer thread for far
less. Row counts per INSERT come from a few fixed sizes so that the connection's
statement cache keeps every text we use; keys and small per-row values travel as one
JSON parameter read back with `json_each`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

# rows per INSERT: a batch of n rows takes at most a few statements, from a few texts
CHUNKS = (256, 64, 16, 4, 1)


def insert_many(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = ""
) -> None:
    """`head` + `(?,..),(?,..)` + `tail` for every row, in order (ids follow the rows)."""
    if not rows:
        return
    one = "(" + ",".join("?" * len(rows[0])) + ")"
    at = 0
    for size in CHUNKS:
        while len(rows) - at >= size:
            params = list(chain.from_iterable(rows[at : at + size]))
            conn.execute(head + ",".join([one] * size) + tail, params)
            at += size


def as_json(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as one JSON array of arrays, for `json_each(?)` (`value ->> 0`, ...)."""
    return json.dumps([*rows], ensure_ascii=False, separators=(",", ":"))  # tuples: arrays
