"""Datasette plugin: show request and response bodies as text where they are text.

The hub stores bodies as BLOBs (byte for byte), which Datasette would otherwise show as
"<Binary: N bytes>". A body that decodes as UTF-8 is shown as that text; anything else
keeps Datasette's binary download link, so nothing is altered or guessed.
"""

from __future__ import annotations

from typing import Any

from datasette import hookimpl
from markupsafe import Markup, escape

# (table, column) pairs holding raw message bytes
BODY_COLUMNS = {
    ("requests", "body"),
    ("requests", "response_body"),
    ("replay_results", "original_body"),
    ("replay_results", "body"),
}
# secrets a page should not show (whoever has the file can still read them with SQL)
SECRET_COLUMNS = {("subscriptions", "secret"), ("subscriptions", "old_secret")}
MAX_SHOWN = 4000  # characters: a table page stays readable; the row page shows as much


def body_text(value: Any) -> str | None:
    """The body as text when it is UTF-8 bytes, else None."""
    if not isinstance(value, bytes):
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


@hookimpl
def render_cell(value: Any, column: str, table: str | None) -> Markup | None:
    if (table, column) in SECRET_COLUMNS and value:
        return Markup("<em>(secret hidden)</em>")
    if (table, column) not in BODY_COLUMNS:
        return None
    text = body_text(value)
    if text is None:
        return None
    shown = text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f"… ({len(text)} chars)"
    return Markup('<pre class="orderhook-body">') + escape(shown) + Markup("</pre>")
