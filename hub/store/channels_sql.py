"""SQL of the channel service: the log of connections to platforms' message channels."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Session:
    link: str
    platform: str
    channel: str
    url: str
    shops: list[str]
    started_at: str
    opened_at: str | None
    ended_at: str
    messages: int
    error: str | None


def log_session(conn: sqlite3.Connection, session: Session) -> int:
    cur = conn.execute(
        "INSERT INTO channel_sessions (link, platform, channel, url, shops, started_at, "
        "opened_at, ended_at, messages, error) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            session.link,
            session.platform,
            session.channel,
            session.url,
            json.dumps(session.shops),
            session.started_at,
            session.opened_at,
            session.ended_at,
            session.messages,
            session.error,
        ),
    )
    return int(cur.lastrowid or 0)


def recent_sessions(conn: sqlite3.Connection, link: str, limit: int = 20) -> list[dict[str, Any]]:
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT * FROM channel_sessions WHERE link = ? ORDER BY id DESC LIMIT ?",
            (link, limit),
        ).fetchall()
    finally:
        conn.row_factory = None
    return [dict(row) for row in rows]
