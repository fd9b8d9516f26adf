"""SQL of the delivery stage: claiming outbox rows, settling them, attempts, subscriptions,
shipments. Every function takes a connection first (run it through `store.write`,
`store.read` or `store.run`); delivery code never builds SQL itself."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hub.model import iso_utc, utcnow

STATES = ("pending", "leased", "done", "dead", "disabled")


def _rows(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _one(cur: sqlite3.Cursor) -> dict[str, Any] | None:
    rows = _rows(cur)
    return rows[0] if rows else None


def _now() -> str:
    return iso_utc(utcnow())


# --- claiming and settling ---------------------------------------------------------------


def destination(kind: str, target: str) -> str:
    """The unit of concurrency caps and circuit breakers: one receiver."""
    return f"{kind}:{target}"


def claim(
    conn: sqlite3.Connection,
    *,
    now: str,
    lease_until: dict[str, str],
    owner: str,
    capacity: dict[str, int],
    default_capacity: int,
    limit: int,
) -> list[dict[str, Any]]:
    """Lease up to `limit` due rows, at most `capacity[dest]` per destination, each until
    `lease_until[kind]` (kinds differ in how long a send may take).

        A row waits while an earlier row of its lane (same kind, target and order) is still
        pending or leased, so one order's messages reach a receiver in order. Destinations
        with no room are left out in SQL, so a backlog at one cannot fill every claim."""
    full = [dest for dest, room in capacity.items() if room <= 0]
    cur = conn.execute(
        "SELECT id, kind, target, order_key, payload, attempts, sends FROM outbox o "
        "WHERE state = 'pending' AND next_attempt_at <= ? "
        "AND (kind || ':' || target) NOT IN (SELECT value FROM json_each(?)) "
        "AND (order_key IS NULL OR NOT EXISTS (SELECT 1 FROM outbox p "
        "  WHERE p.kind = o.kind AND p.target = o.target AND p.order_key = o.order_key "
        "  AND p.id < o.id AND p.state IN ('pending', 'leased'))) "
        "ORDER BY next_attempt_at, id LIMIT ?",
        (now, json.dumps(full), limit * 4),
    )
    taken: list[dict[str, Any]] = []
    room = dict(capacity)
    for row in _rows(cur):
        dest = destination(row["kind"], row["target"])
        left = room.get(dest, default_capacity)
        if left <= 0:
            continue
        updated = conn.execute(
            "UPDATE outbox SET state = 'leased', lease_owner = ?, lease_until = ?, "
            "sends = sends + 1, updated_at = ? WHERE id = ? AND state = 'pending'",
            (owner, lease_until[row["kind"]], now, row["id"]),
        ).rowcount
        if updated:
            room[dest] = left - 1
            row["sends"] += 1
            taken.append(row)
            if len(taken) >= limit:
                break
    return taken


def has_due(conn: sqlite3.Connection, now: str) -> bool:
    """Cheap check on a reader before taking the writer for a claim."""
    row = conn.execute(
        "SELECT 1 FROM outbox WHERE state = 'pending' AND next_attempt_at <= ? LIMIT 1", (now,)
    ).fetchone()
    return row is not None


def sweep(conn: sqlite3.Connection, now: str) -> int:
    """Take back leases whose worker died or stalled: the rows are due again at once."""
    return conn.execute(
        "UPDATE outbox SET state = 'pending', lease_owner = NULL, lease_until = NULL, "
        "next_attempt_at = ?, updated_at = ? WHERE state = 'leased' AND lease_until < ?",
        (now, now, now),
    ).rowcount


def holds_lease(conn: sqlite3.Connection, outbox_id: int, owner: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM outbox WHERE id = ? AND state = 'leased' AND lease_owner = ?",
        (outbox_id, owner),
    ).fetchone()
    return row is not None


@dataclass(frozen=True)
class Attempt:
    outbox_id: int
    started_at: str
    duration_ms: float
    request: dict[str, Any]
    response_status: int | None
    response_body: str | None
    code: str | None
    error: str | None
    outcome: str
    counted: bool


def add_attempt(conn: sqlite3.Connection, attempt: Attempt) -> int:
    cur = conn.execute(
        "INSERT INTO outbox_attempts (outbox_id, started_at, duration_ms, request, "
        "response_status, response_body, code, error, outcome, counted) "
        "VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            attempt.outbox_id,
            attempt.started_at,
            attempt.duration_ms,
            json.dumps(attempt.request, ensure_ascii=False, default=str),
            attempt.response_status,
            attempt.response_body,
            attempt.code,
            attempt.error,
            attempt.outcome,
            int(attempt.counted),
        ),
    )
    return int(cur.lastrowid or 0)


def settle(
    conn: sqlite3.Connection,
    outbox_id: int,
    *,
    state: str,
    counted: bool,
    next_attempt_at: str | None = None,
    error: str | None = None,
    status: int | None = None,
) -> None:
    """Move a leased row on: done, back to pending (retry), dead or disabled."""
    now = _now()
    conn.execute(
        "UPDATE outbox SET state = ?, attempts = attempts + ?, lease_owner = NULL, "
        "lease_until = NULL, next_attempt_at = coalesce(?, next_attempt_at), "
        "last_error = ?, last_status = ?, updated_at = ?, "
        "settled_at = CASE WHEN ? IN ('done', 'dead', 'disabled') THEN ? ELSE NULL END "
        "WHERE id = ?",
        (
            state,
            int(counted),
            next_attempt_at,
            error,
            status,
            now,
            state,
            now,
            outbox_id,
        ),
    )


def failed_attempts(conn: sqlite3.Connection, outbox_id: int) -> int:
    row = conn.execute("SELECT attempts FROM outbox WHERE id = ?", (outbox_id,)).fetchone()
    return int(row[0]) if row else 0


def disable_lane_rows(conn: sqlite3.Connection, kind: str, target: str, reason: str) -> int:
    """A receiver said 410 Gone: park its waiting rows (re-queued when it is re-enabled)."""
    now = _now()
    return conn.execute(
        "UPDATE outbox INDEXED BY outbox_due SET state = 'disabled', last_error = ?, "
        "updated_at = ?, settled_at = ? WHERE kind = ? AND target = ? AND state = 'pending'",
        (reason, now, now, kind, target),
    ).rowcount


# --- listing and re-sending by hand ----------------------------------------------------------

ROW_COLUMNS = (
    "id, kind, target, order_key, state, attempts, sends, next_attempt_at, lease_until, "
    "lease_owner, last_status, last_error, dedupe_key, created_at, updated_at, settled_at"
)


# Each state's rows by the partial index holding only them (schema.m0015). They take
# the state as a literal, not a parameter: SQLite uses a partial index only when the
# query's own WHERE says it applies. Delivered rows are most of the table: newest first,
# a walk by id finds them at once.
STATE_INDEX = {
    "pending": "outbox_due",
    "leased": "outbox_lease",
    "dead": "outbox_dead",
    "disabled": "outbox_disabled",
}


@dataclass(frozen=True)
class RowFilter:
    state: str | None = None  # one of STATES (ValueError otherwise)
    kind: str | None = None
    target: str | None = None
    order_key: str | None = None
    since: str | None = None  # created at or after (ISO UTC)

    def __post_init__(self) -> None:
        # the state goes into the SQL as a literal (see STATE_INDEX): only a known one
        if self.state is not None and self.state not in STATES:
            raise ValueError(f"outbox state is one of {', '.join(STATES)}")

    def source(self) -> str:
        """The table, through the index of the state asked for."""
        index = STATE_INDEX.get(self.state or "")
        return f"outbox INDEXED BY {index}" if index else "outbox"

    def where(self) -> tuple[str, list[Any]]:
        clauses, args = ["1=1"], []
        if self.state is not None:
            clauses.append(f"{'' if self.state in STATE_INDEX else '+'}state = '{self.state}'")
        for column, value in (
            ("kind", self.kind),
            ("target", self.target),
            ("order_key", self.order_key),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if self.since is not None:
            clauses.append("created_at >= ?")
            args.append(self.since)
        return " AND ".join(clauses), args


def list_rows(
    conn: sqlite3.Connection, flt: RowFilter, *, limit: int = 50, before_id: int | None = None
) -> list[dict[str, Any]]:
    where, args = flt.where()
    if before_id is not None:
        where += " AND id < ?"
        args.append(before_id)
    return _rows(
        conn.execute(
            f"SELECT {ROW_COLUMNS} FROM {flt.source()} WHERE {where} ORDER BY id DESC LIMIT ?",
            (*args, limit),
        )
    )


def state_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows by state, from the counts kept by triggers (schema.m0012): counting the
    outbox walked every delivered row kept for `keep_done_days`."""
    return dict(conn.execute("SELECT state, n FROM outbox_counts WHERE n > 0").fetchall())


def get_row(conn: sqlite3.Connection, outbox_id: int) -> dict[str, Any] | None:
    row = _one(
        conn.execute(f"SELECT {ROW_COLUMNS}, payload FROM outbox WHERE id = ?", (outbox_id,))
    )
    if row is not None:
        row["payload"] = json.loads(row["payload"])
        row["attempt_log"] = attempts_of(conn, outbox_id)
    return row


def attempts_of(conn: sqlite3.Connection, outbox_id: int) -> list[dict[str, Any]]:
    rows = _rows(
        conn.execute(
            "SELECT id, started_at, duration_ms, request, response_status, response_body, "
            "code, error, outcome, counted FROM outbox_attempts WHERE outbox_id = ? ORDER BY id",
            (outbox_id,),
        )
    )
    for row in rows:
        row["request"] = json.loads(row["request"])
        row["counted"] = bool(row["counted"])
    return rows


RETRYABLE_BY_HAND = ("dead", "disabled", "pending")


def requeue(conn: sqlite3.Connection, ids: list[int]) -> list[int]:
    """Re-send rows by hand: back to pending, due now, with a fresh attempt budget."""
    now = _now()
    done: list[int] = []
    for outbox_id in ids:
        if conn.execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, "
            "lease_owner = NULL, lease_until = NULL, settled_at = NULL, updated_at = ? "
            "WHERE id = ? AND state IN ('dead', 'disabled', 'pending')",
            (now, now, outbox_id),
        ).rowcount:
            done.append(outbox_id)
    return done


def matching_ids(conn: sqlite3.Connection, flt: RowFilter) -> list[int]:
    where, args = flt.where()
    cur = conn.execute(f"SELECT id FROM {flt.source()} WHERE {where} ORDER BY id", args)
    return [r[0] for r in cur]


# --- subscriptions ------------------------------------------------------------------------

SUB_JSON = ("kinds", "platforms", "shops")


def _sub(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is not None:
        for key in SUB_JSON:
            row[key] = json.loads(row[key])
        row["include_payload"] = bool(row["include_payload"])
    return row


def add_subscription(
    conn: sqlite3.Connection,
    *,
    name: str,
    url: str,
    secret: str,
    kinds: list[str],
    platforms: list[str],
    shops: list[str],
    include_payload: bool,
) -> int:
    now = _now()
    last_event = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    cur = conn.execute(
        "INSERT INTO subscriptions (name, url, secret, kinds, platforms, shops, "
        "include_payload, from_event_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            name,
            url,
            secret,
            json.dumps(kinds),
            json.dumps(platforms),
            json.dumps(shops),
            int(include_payload),
            last_event,
            now,
            now,
        ),
    )
    return int(cur.lastrowid or 0)


def get_subscription(conn: sqlite3.Connection, sub_id: int) -> dict[str, Any] | None:
    return _sub(_one(conn.execute("SELECT * FROM subscriptions WHERE id = ?", (sub_id,))))


def list_subscriptions(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = _rows(conn.execute("SELECT * FROM subscriptions ORDER BY id"))
    return [r for r in (_sub(row) for row in rows) if r is not None]


def active_subscriptions(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = _rows(conn.execute("SELECT * FROM subscriptions WHERE disabled_at IS NULL ORDER BY id"))
    return [r for r in (_sub(row) for row in rows) if r is not None]


def set_subscription_disabled(conn: sqlite3.Connection, sub_id: int, reason: str | None) -> bool:
    """Disable (reason given) or re-enable (None) a subscription; False if it does not exist."""
    now = _now()
    return bool(
        conn.execute(
            "UPDATE subscriptions SET disabled_at = ?, disabled_reason = ?, updated_at = ? "
            "WHERE id = ?",
            (now if reason else None, reason, now, sub_id),
        ).rowcount
    )


def requeue_disabled(conn: sqlite3.Connection, kind: str, target: str) -> int:
    now = _now()
    return conn.execute(
        "UPDATE outbox INDEXED BY outbox_disabled SET state = 'pending', attempts = 0, "
        "next_attempt_at = ?, settled_at = NULL, updated_at = ? "
        "WHERE kind = ? AND target = ? AND state = 'disabled'",
        (now, now, kind, target),
    ).rowcount


def rotate_subscription_secret(
    conn: sqlite3.Connection, sub_id: int, new_secret: str, old_until: str
) -> bool:
    now = _now()
    return bool(
        conn.execute(
            "UPDATE subscriptions SET old_secret = secret, old_secret_until = ?, secret = ?, "
            "updated_at = ? WHERE id = ?",
            (old_until, new_secret, now, sub_id),
        ).rowcount
    )


def events_for_fanout(conn: sqlite3.Connection, after_id: int, limit: int) -> list[dict[str, Any]]:
    rows = _rows(
        conn.execute(
            "SELECT id, platform, shop, order_id, kind, platform_type, message_id, occurred_at, "
            "amount, currency, payload, source FROM events WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
    )
    for row in rows:
        row["payload"] = json.loads(row["payload"])
    return rows


# --- shipments (reverse sync) -----------------------------------------------------------------


def order_exists(conn: sqlite3.Connection, platform: str, shop: str, order_id: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM orders WHERE platform = ? AND shop = ? AND order_id = ?",
            (platform, shop, order_id),
        ).fetchone()
        is not None
    )


def find_shipment(
    conn: sqlite3.Connection,
    platform: str,
    shop: str,
    order_id: str,
    carrier: str,
    tracking_no: str,
) -> dict[str, Any] | None:
    return _one(
        conn.execute(
            "SELECT * FROM shipments WHERE platform = ? AND shop = ? AND order_id = ? "
            "AND carrier = ? AND tracking_no = ?",
            (platform, shop, order_id, carrier, tracking_no),
        )
    )


def add_shipment(
    conn: sqlite3.Connection,
    *,
    platform: str,
    shop: str,
    order_id: str,
    carrier: str,
    tracking_no: str,
    outbox_id: int | None,
    requested_by: str,
) -> int:
    now = _now()
    cur = conn.execute(
        "INSERT INTO shipments (platform, shop, order_id, carrier, tracking_no, outbox_id, "
        "state, requested_by, created_at, updated_at) VALUES (?,?,?,?,?,?,'queued',?,?,?)",
        (platform, shop, order_id, carrier, tracking_no, outbox_id, requested_by, now, now),
    )
    return int(cur.lastrowid or 0)


def update_shipment(
    conn: sqlite3.Connection, outbox_id: int, state: str, code: str | None, message: str | None
) -> int:
    return conn.execute(
        "UPDATE shipments SET state = ?, code = ?, message = ?, updated_at = ? WHERE outbox_id = ?",
        (state, code, message, _now(), outbox_id),
    ).rowcount


def shipments_for_order(
    conn: sqlite3.Connection, platform: str, shop: str, order_id: str
) -> list[dict[str, Any]]:
    return _rows(
        conn.execute(
            "SELECT id, carrier, tracking_no, state, code, message, outbox_id, requested_by, "
            "created_at, updated_at FROM shipments WHERE platform = ? AND shop = ? "
            "AND order_id = ? ORDER BY id",
            (platform, shop, order_id),
        )
    )


def get_shipment(conn: sqlite3.Connection, shipment_id: int) -> dict[str, Any] | None:
    return _one(conn.execute("SELECT * FROM shipments WHERE id = ?", (shipment_id,)))


def prune_done(conn: sqlite3.Connection, settled_before: str, limit: int = 500) -> int:
    """Retention: drop delivered rows (and their attempts) settled before the cutoff.
    Dead and parked rows stay until someone deals with them. At most `limit` rows a
    call, found by the partial index `outbox_settled`: run it by `Store.write_in_steps`,
    one short write turn at a time."""
    ids = [
        r[0]
        for r in conn.execute(
            # pinned: a seek to the oldest delivered rows whatever the planner guesses (it
            # once chose a (state, ...) index and read every delivered row's settled_at)
            "SELECT id FROM outbox INDEXED BY outbox_settled "
            "WHERE state = 'done' AND settled_at < ? LIMIT ?",
            (settled_before, limit),
        )
    ]
    if ids:
        marks = ",".join("?" * len(ids))
        conn.execute(f"DELETE FROM outbox_attempts WHERE outbox_id IN ({marks})", ids)
        conn.execute(f"DELETE FROM outbox WHERE id IN ({marks})", ids)
    return len(ids)


def release(conn: sqlite3.Connection, owner: str) -> int:
    """A worker stopping cleanly hands its leases back (due at once)."""
    now = _now()
    return conn.execute(
        "UPDATE outbox SET state = 'pending', lease_owner = NULL, lease_until = NULL, "
        "next_attempt_at = ?, updated_at = ? WHERE state = 'leased' AND lease_owner = ?",
        (now, now, owner),
    ).rowcount


@contextlib.contextmanager
def savepoint(conn: sqlite3.Connection, name: str) -> Iterator[None]:
    """Undo only what the block wrote if it fails; the caller's transaction goes on."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")
