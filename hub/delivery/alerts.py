"""Raising an alert from inside a delivery transaction.

`hub.notify.alert(conn, settings, title=, text=, severity=)` queues notification rows for
the `[notify] alerts` channels in the caller's transaction. A failing alert is rolled
back to a savepoint and logged: it must never undo the settle it rides along with, or
the row would be sent again.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from hub import notify
from hub.store import delivery_sql

log = logging.getLogger("orderhook.delivery")


def raise_alert(
    conn: sqlite3.Connection, settings: Any, title: str, text: str, severity: str
) -> None:
    log.warning("%s: %s", title, text)
    try:
        with delivery_sql.savepoint(conn, "alert"):
            notify.alert(conn, settings, title=title, text=text, severity=severity)
    except Exception:
        log.exception("could not queue the alert %r", title)
