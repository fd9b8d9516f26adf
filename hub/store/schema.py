"""Numbered migrations, recorded in the database (`_sqlite_migrations`) by sqlite-utils.

Each stage of the hub adds its tables in its own numbered migration; never edit an
applied one, add the next number instead.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("orderhook")


@migrations(name="0001_foundation")
def m0001_foundation(db: Database) -> None:
    # Every inbound request, byte for byte, with what the hub made of it.
    db.execute(
        """
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            received_at TEXT NOT NULL,
            channel TEXT NOT NULL DEFAULT 'http',
            source TEXT NOT NULL DEFAULT 'push',
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            query TEXT NOT NULL DEFAULT '',
            headers TEXT NOT NULL,
            body BLOB NOT NULL,
            body_truncated INTEGER NOT NULL DEFAULT 0,
            peer TEXT,
            platform TEXT,
            shop TEXT,
            outcome TEXT NOT NULL,
            reason TEXT,
            detail TEXT,
            forensics TEXT,
            events_new INTEGER NOT NULL DEFAULT 0,
            events_total INTEGER NOT NULL DEFAULT 0,
            response_status INTEGER NOT NULL,
            response_body BLOB,
            handling_ms REAL
        )
        """
    )
    db.execute("CREATE INDEX requests_received ON requests(received_at)")
    db.execute("CREATE INDEX requests_outcome ON requests(outcome, reason)")
    # Canonical order events; the UNIQUE dedupe key is what makes a redelivery a duplicate.
    db.execute(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            request_id INTEGER NOT NULL,
            platform TEXT NOT NULL,
            shop TEXT NOT NULL,
            message_id TEXT,
            dedupe_key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            platform_type TEXT NOT NULL,
            order_id TEXT NOT NULL,
            occurred_at TEXT NOT NULL,
            amount TEXT,
            currency TEXT,
            payload TEXT NOT NULL,
            payload_sha TEXT NOT NULL,
            source TEXT NOT NULL DEFAULT 'push',
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX events_order ON events(platform, shop, order_id)")
    # Current state per platform order, derived from events after the commit.
    db.execute(
        """
        CREATE TABLE orders (
            platform TEXT NOT NULL,
            shop TEXT NOT NULL,
            order_id TEXT NOT NULL,
            status TEXT NOT NULL,
            amount TEXT,
            currency TEXT,
            first_event_id INTEGER NOT NULL,
            last_event_id INTEGER NOT NULL,
            occurred_at TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (platform, shop, order_id)
        )
        """
    )
    # How far each post-commit stage has read the events table (survives restarts).
    db.execute(
        "CREATE TABLE stage_cursors (stage TEXT PRIMARY KEY, last_event_id INTEGER NOT NULL)"
    )
    db.execute(
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            created_at TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    db.execute(
        """
        CREATE TABLE tokens (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            token_sha256 TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_used_at TEXT,
            revoked_at TEXT
        )
        """
    )


def apply(db: Database) -> None:
    migrations.apply(db)


@migrations(name="0002_outbox")
def m0002_outbox(db: Database) -> None:
    # Everything the hub sends out, written in the same transaction as the decision that
    # causes it; the delivery worker claims rows with a lease. See hub/store/outbox_sql.py.
    db.execute(
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,            -- subscription | notify | platform_call
            target TEXT NOT NULL,          -- subscription id, channel name, 'platform:shop'
            order_key TEXT,                -- 'platform:shop:order_id': one order's rows go in order
            payload TEXT NOT NULL,         -- JSON
            dedupe_key TEXT UNIQUE,        -- optional: the same intent is queued once
            state TEXT NOT NULL DEFAULT 'pending',  -- pending | leased | done | dead | disabled
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            lease_until TEXT,
            last_error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX outbox_due ON outbox(state, next_attempt_at)")
    db.execute("CREATE INDEX outbox_order ON outbox(order_key, id)")


@migrations(name="0003_reconcile")
def m0003_reconcile(db: Database) -> None:
    # Per shop: how far reconciliation has pulled the platform's changed orders.
    db.execute(
        """
        CREATE TABLE reconcile_state (
            shop TEXT PRIMARY KEY,
            platform TEXT NOT NULL,
            watermark TEXT,                -- end of the last window pulled completely (UTC)
            last_run_id INTEGER,
            updated_at TEXT NOT NULL
        )
        """
    )
    # Every run, as evidence: the window, what the platform returned, what pushes missed.
    db.execute(
        """
        CREATE TABLE reconcile_runs (
            id INTEGER PRIMARY KEY,
            shop TEXT NOT NULL,
            platform TEXT NOT NULL,
            trigger TEXT NOT NULL,         -- schedule | manual
            window_start TEXT NOT NULL,
            window_end TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            outcome TEXT NOT NULL DEFAULT 'running',  -- running | ok | stale | failed
            pages INTEGER NOT NULL DEFAULT 0,
            stale_pages INTEGER NOT NULL DEFAULT 0,
            events_seen INTEGER NOT NULL DEFAULT 0,
            events_new INTEGER NOT NULL DEFAULT 0,     -- changes the pushes had missed
            error_code TEXT,
            error TEXT
        )
        """
    )
    db.execute("CREATE INDEX reconcile_runs_shop ON reconcile_runs(shop, id)")


@migrations(name="0004_channels")
def m0004_channels(db: Database) -> None:
    # One row per connection to a platform's message channel (Taobao TMC, Pinduoduo):
    # when it was tried, whether it opened, how it ended and why. "Why did no orders
    # arrive at 02:00?" is answered here. See hub/channels.py.
    db.execute(
        """
        CREATE TABLE channel_sessions (
            id INTEGER PRIMARY KEY,
            link TEXT NOT NULL,            -- 'platform|url|app_key[|group]': one connection
            platform TEXT NOT NULL,
            channel TEXT NOT NULL,         -- tmc | pmc
            url TEXT NOT NULL,
            shops TEXT NOT NULL,           -- JSON list of the shop names it serves
            started_at TEXT NOT NULL,
            opened_at TEXT,                -- NULL: the connect failed or was refused
            ended_at TEXT NOT NULL,
            messages INTEGER NOT NULL DEFAULT 0,
            error TEXT                     -- why it ended ('connect_refused: ...', ...)
        )
        """
    )
    db.execute("CREATE INDEX channel_sessions_link ON channel_sessions(link, ended_at)")


@migrations(name="0007_dispatch")
def m0007_dispatch(db: Database) -> None:
    # Order state machine: the facts rules look at, and where the order was routed.
    db.execute("ALTER TABLE orders ADD COLUMN facts TEXT NOT NULL DEFAULT '{}'")
    db.execute("ALTER TABLE orders ADD COLUMN route_group TEXT")
    db.execute("ALTER TABLE orders ADD COLUMN route_rule TEXT")
    db.execute("CREATE INDEX orders_status ON orders(status)")  # the board counts open stages
    # Every status change (and every status-bearing event that changed nothing, applied=0),
    # with the event or the dispatch decision that caused it.
    db.execute(
        """
        CREATE TABLE order_transitions (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            shop TEXT NOT NULL,
            order_id TEXT NOT NULL,
            from_status TEXT,
            to_status TEXT NOT NULL,
            applied INTEGER NOT NULL,      -- 0: kept as evidence, changed nothing
            event_id INTEGER,              -- the event that caused it, if an event did
            cause TEXT NOT NULL,           -- 'event:order.paid', 'task:12 assigned to ana', ...
            note TEXT,
            at TEXT NOT NULL
        )
        """
    )
    db.execute(
        "CREATE INDEX order_transitions_order ON order_transitions(platform, shop, order_id)"
    )
    # Operators as configured, with their live working status.
    db.execute(
        """
        CREATE TABLE operators (
            name TEXT PRIMARY KEY,
            groups TEXT NOT NULL,          -- JSON list of group names
            capacity INTEGER NOT NULL,
            status TEXT NOT NULL,          -- working | away | off
            configured INTEGER NOT NULL DEFAULT 1,
            last_assigned_seq INTEGER NOT NULL DEFAULT 0,  -- round robin among equals
            updated_at TEXT NOT NULL
        )
        """
    )
    # One task per routed order: who owns the work, in which queue.
    db.execute(
        """
        CREATE TABLE tasks (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            shop TEXT NOT NULL,
            order_id TEXT NOT NULL,
            grp TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            rule TEXT,
            state TEXT NOT NULL,           -- queued | assigned | claimed | done | cancelled
            queue TEXT NOT NULL DEFAULT 'group',  -- group | supervisor
            assignee TEXT,
            created_at TEXT NOT NULL,
            waiting_since TEXT NOT NULL,   -- escalation clock: created, or last put back
            assigned_at TEXT,
            claimed_at TEXT,
            escalated_at TEXT,
            released_by TEXT,              -- not handed straight back to who released it
            closed_at TEXT,
            close_reason TEXT,
            updated_at TEXT NOT NULL,
            UNIQUE (platform, shop, order_id)
        )
        """
    )
    # the group queue in hand-out order, read from the head
    db.execute(
        "CREATE INDEX tasks_queue ON tasks(state, queue, grp, priority DESC, waiting_since, id)"
    )
    db.execute("CREATE INDEX tasks_assignee ON tasks(assignee, state)")
    # the escalation scan: open, unclaimed, not yet escalated, oldest first
    db.execute(
        "CREATE INDEX tasks_unescalated ON tasks(grp, waiting_since) "
        "WHERE escalated_at IS NULL AND state IN ('queued', 'assigned')"
    )
    # Every dispatch decision, findable by ops: routed, assigned, queued, escalated, ...
    db.execute(
        """
        CREATE TABLE dispatch_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            decision TEXT NOT NULL,
            platform TEXT,
            shop TEXT,
            order_id TEXT,
            task_id INTEGER,
            grp TEXT,
            operator TEXT,
            rule TEXT,
            detail TEXT NOT NULL DEFAULT ''
        )
        """
    )
    db.execute("CREATE INDEX dispatch_log_order ON dispatch_log(platform, shop, order_id)")
    db.execute("CREATE INDEX dispatch_log_decision ON dispatch_log(decision, at)")


@migrations(name="0005_delivery")
def m0005_delivery(db: Database) -> None:
    # Who holds a row's lease (a settle from a worker whose lease was swept is ignored),
    # how many times it was sent (attempts counts only failures towards the dead limit).
    db.execute("ALTER TABLE outbox ADD COLUMN lease_owner TEXT")
    db.execute("ALTER TABLE outbox ADD COLUMN sends INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE outbox ADD COLUMN last_status INTEGER")
    db.execute("ALTER TABLE outbox ADD COLUMN settled_at TEXT")
    # one lane = one order's rows to one destination; the worker sends a lane in id order
    db.execute("CREATE INDEX outbox_lane ON outbox(kind, target, order_key, id)")
    db.execute("CREATE INDEX outbox_lease ON outbox(state, lease_until)")
    # Every attempt, as evidence: what was sent, what came back, how long it took.
    db.execute(
        """
        CREATE TABLE outbox_attempts (
            id INTEGER PRIMARY KEY,
            outbox_id INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            duration_ms REAL NOT NULL,
            request TEXT NOT NULL,         -- JSON: url/method/headers/body excerpt, or the call
            response_status INTEGER,
            response_body TEXT,            -- excerpt
            code TEXT,                     -- the receiver's own error code, when it has one
            error TEXT,                    -- transport error, timeout, refusal
            outcome TEXT NOT NULL,         -- done | retry | dead | disabled | lost_lease
            counted INTEGER NOT NULL DEFAULT 1  -- 0: a breaker probe, not held against the row
        )
        """
    )
    db.execute("CREATE INDEX outbox_attempts_row ON outbox_attempts(outbox_id, id)")
    # The merchant's systems (ERP, WMS, BI) subscribed to canonical order events.
    db.execute(
        """
        CREATE TABLE subscriptions (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            url TEXT NOT NULL,
            secret TEXT NOT NULL,          -- whsec_...; signs every delivery
            old_secret TEXT,               -- still signed with until old_secret_until (rotation)
            old_secret_until TEXT,
            kinds TEXT NOT NULL DEFAULT '[]',      -- JSON lists; empty = all
            platforms TEXT NOT NULL DEFAULT '[]',
            shops TEXT NOT NULL DEFAULT '[]',
            include_payload INTEGER NOT NULL DEFAULT 1,
            from_event_id INTEGER NOT NULL,        -- events after this one are delivered
            disabled_at TEXT,
            disabled_reason TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    # Reverse sync: tracking numbers sent back to the platform, and what it answered.
    db.execute(
        """
        CREATE TABLE shipments (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            shop TEXT NOT NULL,
            order_id TEXT NOT NULL,
            carrier TEXT NOT NULL,
            tracking_no TEXT NOT NULL,
            outbox_id INTEGER,
            state TEXT NOT NULL,           -- queued | retrying | done | failed
            code TEXT,                     -- the platform's error code
            message TEXT,                  -- the platform's error message
            requested_by TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (platform, shop, order_id, carrier, tracking_no)
        )
        """
    )
    db.execute("CREATE INDEX shipments_outbox ON shipments(outbox_id)")


@migrations(name="0008_sandbox")
def m0008_sandbox(db: Database) -> None:
    # One `orderhook replay` run: what it selected and where it sent it. A run stopped
    # half-way is resumed from here (`orderhook replay --resume ID`).
    db.execute(
        """
        CREATE TABLE replay_runs (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            target TEXT NOT NULL,           -- base URL (or exact URL) requests went to
            keep_path INTEGER NOT NULL,     -- 1: the recording's path was appended to target
            mode TEXT NOT NULL,             -- exact | resign
            selection TEXT NOT NULL,        -- JSON: ids, filter or files, as given
            total INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'running'  -- running | interrupted | done
        )
        """
    )
    # Each replayed request's response, next to the original one.
    db.execute(
        """
        CREATE TABLE replay_results (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES replay_runs(id),
            item TEXT NOT NULL,             -- 'request:17' or a recording file's path
            request_id INTEGER,             -- the original request, when it came from the db
            sent_at TEXT NOT NULL,
            url TEXT NOT NULL,
            original_status INTEGER,
            original_body BLOB,
            status INTEGER,                 -- NULL: no response (see error)
            body BLOB,
            error TEXT,
            same INTEGER NOT NULL,          -- 1: same status and body as the original
            diff TEXT,
            elapsed_ms REAL,
            UNIQUE (run_id, item)
        )
        """
    )
    # TLS expiry alerts already raised, so a restart does not raise them again.
    db.execute(
        """
        CREATE TABLE tls_alerts (
            fingerprint TEXT NOT NULL,      -- SHA-256 of the certificate (DER), hex
            threshold_days INTEGER NOT NULL,
            not_after TEXT NOT NULL,
            raised_at TEXT NOT NULL,
            PRIMARY KEY (fingerprint, threshold_days)
        )
        """
    )


@migrations(name="0010_reconcile_blocked")
def m0010_reconcile_blocked(db: Database) -> None:
    # A shop whose pulls fail in a way only a person can fix (no token, token expired,
    # credentials refused): since when, why, how many tries, and when the next one is.
    # NULL blocked_since: not blocked. See hub/reconcile.py.
    for column in (
        "blocked_since TEXT",  # first failed try of the current block (UTC)
        "blocked_code TEXT",  # the platform's or the client's error code
        "blocked_error TEXT",
        "blocked_tries INTEGER NOT NULL DEFAULT 0",
        "next_try_at TEXT",  # when the service tries again by itself (a reload: at once)
    ):
        db.execute(f"ALTER TABLE reconcile_state ADD COLUMN {column}")


_OPEN = "('queued', 'assigned', 'claimed')"  # a task's states while it holds work


def _count(counts: str, keys: dict[str, str], row: str, delta: int, when: str = "") -> str:
    """The trigger statement adding `delta` to the count of `row` (OLD or NEW) in the
    table `counts`, keyed by `keys` (column: expression, `{row}` standing for the row).
    Two of these in a trigger cost less than one over both rows (UNION ALL): 16 against
    22 µs a task created and assigned, on top of the 18 µs those writes take alone."""
    columns = ", ".join(keys)
    values = ", ".join(expr.format(row=row) for expr in keys.values())
    where = f" WHERE {when.format(row=row)}" if when else ""
    return (
        f"INSERT INTO {counts} ({columns}, n) SELECT {values}, {delta}{where} "
        f"ON CONFLICT ({columns}) DO UPDATE SET n = n + excluded.n;"
    )


def _count_triggers(
    db: Database, table: str, counts: str, keys: dict[str, str], when: str = ""
) -> None:
    """Keep `counts` right whatever inserts, moves or deletes a row of `table`."""
    moved = " OR ".join(f"OLD.{column} IS NOT NEW.{column}" for column in keys)
    db.execute(
        f"CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table} "
        f"BEGIN {_count(counts, keys, 'NEW', 1, when)} END"
    )
    db.execute(
        f"CREATE TRIGGER {table}_count_update AFTER UPDATE OF {', '.join(keys)} ON {table} "
        f"WHEN {moved} "
        f"BEGIN {_count(counts, keys, 'OLD', -1, when)} {_count(counts, keys, 'NEW', 1, when)} END"
    )
    db.execute(
        f"CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table} "
        f"BEGIN {_count(counts, keys, 'OLD', -1, when)} END"
    )


@migrations(name="0011_task_counts")
def m0011_task_counts(db: Database) -> None:
    # How many open tasks each (group, queue, state, assignee) holds, kept by triggers on
    # `tasks` so that whatever moves a task keeps it right. Hand-out (after every commit),
    # the board (up to four times a second) and the queue gauges read these few rows;
    # counting the tasks instead walked every open one, and on a sale night nobody closes
    # them before the parcels leave (6.5 ms a hand-out and ~60 ms a board snapshot at
    # 40,000: docs/dispatch.md, "The stage as tasks pile up").
    db.execute(
        """
        CREATE TABLE task_counts (
            grp TEXT NOT NULL,
            queue TEXT NOT NULL,
            state TEXT NOT NULL,           -- queued | assigned | claimed
            assignee TEXT NOT NULL,        -- '' for nobody
            n INTEGER NOT NULL,
            PRIMARY KEY (grp, queue, state, assignee)
        ) WITHOUT ROWID
        """
    )
    keys = {"grp": "{row}.grp", "queue": "{row}.queue", "state": "{row}.state"}
    keys["assignee"] = "coalesce({row}.assignee, '')"
    _count_triggers(db, "tasks", "task_counts", keys, when=f"{{row}}.state IN {_OPEN}")
    db.execute(
        "INSERT INTO task_counts (grp, queue, state, assignee, n) "
        "SELECT grp, queue, state, coalesce(assignee, ''), count(*) FROM tasks "
        f"WHERE state IN {_OPEN} GROUP BY 1, 2, 3, 4"
    )
    # the oldest unclaimed task of each group and queue, for the board and the gauges
    db.execute(
        "CREATE INDEX tasks_waiting ON tasks(grp, queue, waiting_since) "
        "WHERE state IN ('queued', 'assigned')"
    )


@migrations(name="0012_outbox_housekeeping")
def m0012_outbox_housekeeping(db: Database) -> None:
    # How many outbox rows are in each state, kept by triggers: the backlog gauge read
    # them by counting the whole outbox at every lease sweep (every 15 s by default),
    # delivered rows included, which are kept `keep_done_days` (30): ~0.12 s per million
    # rows, and a busy month holds tens of millions (docs/delivery.md, "Housekeeping").
    db.execute(
        "CREATE TABLE outbox_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID"
    )
    _count_triggers(db, "outbox", "outbox_counts", {"state": "{row}.state"})
    db.execute("INSERT INTO outbox_counts (state, n) SELECT state, count(*) FROM outbox GROUP BY 1")
    # Delivered rows by when they settled, so the hourly prune seeks to the old ones
    # instead of reading every delivered row (inside a write turn) to find them.
    db.execute("CREATE INDEX outbox_settled ON outbox(settled_at) WHERE state = 'done'")


@migrations(name="0013_order_counts")
def m0013_order_counts(db: Database) -> None:
    # How many orders are in each status, kept by triggers: the board (up to four times a
    # second while someone watches it) counted the open orders through `orders_status`,
    # 4-7 ms at 40,000 and linear beyond; on a sale night hundreds of thousands stay open
    # until their parcels ship. The index had no other reader, and the triggers cost the
    # stage less than keeping it did (docs/performance.md, "Seventh round").
    db.execute(
        "CREATE TABLE order_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID"
    )
    _count_triggers(db, "orders", "order_counts", {"status": "{row}.status"})
    db.execute(
        "INSERT INTO order_counts (status, n) SELECT status, count(*) FROM orders GROUP BY 1"
    )
    db.execute("DROP INDEX orders_status")


@migrations(name="0014_requests_by_outcome")
def m0014_requests_by_outcome(db: Database) -> None:
    # (outcome, reason) kept each outcome's requests in reason order, so a list of the
    # newest rejected ones (the API), a stream past a cursor and the board's last hour all
    # read every index entry of that outcome and sorted them. By outcome alone, entries
    # follow the id and each is a seek (docs/performance.md, "Seventh round").
    db.execute("DROP INDEX requests_outcome")
    db.execute("CREATE INDEX requests_outcome ON requests(outcome)")


@migrations(name="0015_outbox_by_state")
def m0015_outbox_by_state(db: Database) -> None:
    # The outbox's state indexes hold only the rows of their state. (state, ...) indexes
    # held every delivered row too, the most of the table, written for nothing; and a
    # list of the dead rows (the board, four times a second while watched, and `outbox
    # list --dead`) gathered and sorted every dead row, or walked the whole outbox.
    db.execute("DROP INDEX outbox_due")
    db.execute("CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE state = 'pending'")
    db.execute("DROP INDEX outbox_lease")
    db.execute("CREATE INDEX outbox_lease ON outbox(lease_until) WHERE state = 'leased'")
    db.execute("CREATE INDEX outbox_dead ON outbox(id) WHERE state = 'dead'")
    db.execute("CREATE INDEX outbox_disabled ON outbox(id) WHERE state = 'disabled'")
