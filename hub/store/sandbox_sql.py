"""SQL of the sandbox: selecting recorded requests, replay runs and results, importing
recordings, stream cursors and TLS alert bookkeeping."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.model import iso_utc, utcnow
from hub.store.connection import connect, transaction
from hub.store.queries import REQUEST_COLUMNS, _request_row
from hub.store.turn import Turn


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """Which recorded requests a replay or export takes; every part is optional."""

    ids: tuple[int, ...] = ()
    platform: str | None = None
    shop: str | None = None
    outcome: str | None = None
    since: str | None = None  # ISO UTC, inclusive
    until: str | None = None  # ISO UTC, exclusive
    limit: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = ["1=1"]
        args: list[Any] = []
        if self.ids:
            clauses.append(f"id IN ({','.join('?' * len(self.ids))})")
            args.extend(self.ids)
        for column, value in (
            ("platform", self.platform),
            ("shop", self.shop),
            ("outcome", self.outcome),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if self.since:
            clauses.append("received_at >= ?")
            args.append(self.since)
        if self.until:
            clauses.append("received_at < ?")
            args.append(self.until)
        return " AND ".join(clauses), args

    def as_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        return {k: v for k, v in values.items() if v is not None} | {"ids": list(self.ids)}


ID_CHUNK = 10000  # below SQLite's limit on bound parameters


def select_requests(conn: sqlite3.Connection, flt: RequestFilter) -> list[dict[str, Any]]:
    if len(flt.ids) > ID_CHUNK:  # a resumed run of a big selection: its ids in chunks
        rows: list[dict[str, Any]] = []
        for start in range(0, len(flt.ids), ID_CHUNK):
            part = dataclasses.replace(flt, ids=flt.ids[start : start + ID_CHUNK], limit=None)
            rows += select_requests(conn, part)
        rows.sort(key=lambda r: r["id"])
        return rows if flt.limit is None else rows[: flt.limit]
    where, args = flt.where()
    limit = "" if flt.limit is None else f" LIMIT {int(flt.limit)}"
    cur = conn.execute(
        f"SELECT {REQUEST_COLUMNS} FROM requests WHERE {where} ORDER BY id{limit}", args
    )
    return [_request_row(cur, row) for row in cur.fetchall()]


def requests_after(
    conn: sqlite3.Connection, after_id: int, outcomes: tuple[str, ...], limit: int = 200
) -> list[dict[str, Any]]:
    """Requests past a cursor with one of these outcomes, oldest first (live stream): for
    each outcome, its next `limit` by a seek in `requests_outcome` (outcome, then id),
    merged. However far behind the cursor is, and however rare the outcome (a listener
    of rejected requests only), it reads at most `limit` rows an outcome: a walk by id
    read every request since the last match, and an `outcome IN (...)` gathered and
    sorted every match since the cursor."""
    if not outcomes:
        return []
    one = (
        f"SELECT * FROM (SELECT {REQUEST_COLUMNS} FROM requests "
        "WHERE outcome = ? AND id > ? ORDER BY id LIMIT ?)"
    )
    cur = conn.execute(
        " UNION ALL ".join([one] * len(outcomes)) + " ORDER BY id LIMIT ?",
        (*(arg for outcome in outcomes for arg in (outcome, after_id, limit)), limit),
    )
    return [_request_row(cur, row) for row in cur.fetchall()]


def max_request_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM requests").fetchone()[0])


# --- replay runs ---------------------------------------------------------------------


def create_run(
    conn: sqlite3.Connection,
    *,
    target: str,
    keep_path: bool,
    mode: str,
    selection: dict[str, Any],
    total: int,
) -> int:
    now = iso_utc(utcnow())
    cur = conn.execute(
        "INSERT INTO replay_runs (created_at, updated_at, target, keep_path, mode, selection, "
        "total) VALUES (?,?,?,?,?,?,?)",
        (now, now, target, int(keep_path), mode, json.dumps(selection), total),
    )
    return int(cur.lastrowid or 0)


def get_run(conn: sqlite3.Connection, run_id: int) -> dict[str, Any] | None:
    cur = conn.execute("SELECT * FROM replay_runs WHERE id = ?", (run_id,))
    row = cur.fetchone()
    if row is None:
        return None
    run = dict(zip([c[0] for c in cur.description], row, strict=True))
    run["selection"] = json.loads(run["selection"])
    return run


def set_run_state(conn: sqlite3.Connection, run_id: int, state: str) -> None:
    conn.execute(
        "UPDATE replay_runs SET state = ?, updated_at = ? WHERE id = ?",
        (state, iso_utc(utcnow()), run_id),
    )


def answered_items(conn: sqlite3.Connection, run_id: int) -> set[str]:
    """Items of a run that got a response (a resumed run skips them, retries the rest)."""
    rows = conn.execute(
        "SELECT item FROM replay_results WHERE run_id = ? AND status IS NOT NULL", (run_id,)
    )
    return {r[0] for r in rows}


RESULT_FIELDS = (
    "run_id",
    "item",
    "request_id",
    "sent_at",
    "url",
    "original_status",
    "original_body",
    "status",
    "body",
    "error",
    "same",
    "diff",
    "elapsed_ms",
)


SAVE_RESULT = (
    f"INSERT INTO replay_results ({', '.join(RESULT_FIELDS)}) "
    f"VALUES ({','.join('?' * len(RESULT_FIELDS))}) "
    "ON CONFLICT (run_id, item) DO UPDATE SET "
    + ", ".join(f"{f} = excluded.{f}" for f in RESULT_FIELDS[2:])
)


def save_results(conn: sqlite3.Connection, results: list[dict[str, Any]]) -> None:
    """Answers of a run (a resumed run's answer replaces the failure stored before)."""
    conn.executemany(SAVE_RESULT, ([result.get(f) for f in RESULT_FIELDS] for result in results))


class ResultWriter:
    """Where `orderhook replay` stores its answers, batch after batch: one connection and
    one write turn for the whole run. `Store.run` opens both and migrates for every
    call (~6 ms of CPU: more than sending the answers of a batch), and a started Store
    brings an ingest writer process a replay never uses. One thread at a time."""

    def __init__(self, path: Path) -> None:
        self._conn = connect(path)
        self._turn = Turn(path)

    def save(self, results: list[dict[str, Any]], run_state: tuple[int, str] | None = None) -> None:
        """Answers of a run, and with `run_state` (run id, state) the run's new state, in
        one transaction (durable when it returns)."""
        with self._turn.thread(), transaction(self._conn):
            save_results(self._conn, results)
            if run_state is not None:
                set_run_state(self._conn, *run_state)

    def close(self) -> None:
        self._conn.close()
        self._turn.close()


def run_results(conn: sqlite3.Connection, run_id: int) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT * FROM replay_results WHERE run_id = ? ORDER BY id", (run_id,))
    return [dict(zip([c[0] for c in cur.description], r, strict=True)) for r in cur.fetchall()]


# --- import ---------------------------------------------------------------------------


def insert_recording(
    conn: sqlite3.Connection, rec: dict[str, Any], body: bytes, response_body: bytes
) -> int:
    """Store a recording (decoded bodies given) as a request row, source 'import'."""
    response = rec.get("response") or {}
    cur = conn.execute(
        "INSERT INTO requests (received_at, channel, source, method, path, query, headers, "
        "body, body_truncated, peer, platform, shop, outcome, reason, detail, forensics, "
        "response_status, response_body, handling_ms) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            rec.get("received_at") or iso_utc(utcnow()),
            rec.get("channel") or "http",
            "import",
            rec["method"],
            rec["path"],
            rec.get("query") or "",
            json.dumps([list(h) for h in rec["headers"]], ensure_ascii=False),
            body,
            int(bool(rec.get("body_truncated"))),
            rec.get("peer"),
            rec.get("platform"),
            rec.get("shop"),
            rec.get("outcome") or "imported",
            rec.get("reason"),
            rec.get("detail"),
            rec.get("forensics"),
            response.get("status") or 0,
            response_body,
            rec.get("handling_ms"),
        ),
    )
    return int(cur.lastrowid or 0)


# --- TLS expiry alerts ------------------------------------------------------------------


def claim_tls_alert(
    conn: sqlite3.Connection, fingerprint: str, threshold_days: int, not_after: str
) -> bool:
    """True the first time this certificate crosses this threshold (then raise the alert)."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO tls_alerts (fingerprint, threshold_days, not_after, raised_at) "
        "VALUES (?,?,?,?)",
        (fingerprint, threshold_days, not_after, iso_utc(utcnow())),
    )
    return cur.rowcount == 1
