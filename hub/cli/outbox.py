"""`orderhook outbox`: look at what the hub sends out, and re-send by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from hub.cli.options import config_options, load_settings
from hub.store import Store, delivery_sql
from hub.store.outbox_sql import KINDS

STATES = delivery_sql.STATES


def filter_options(fn: Any) -> Any:
    fn = click.option("--since", help="Only rows created at or after this ISO UTC time.")(fn)
    fn = click.option("--order", "order_key", help="Only one order: PLATFORM:SHOP:ORDER_ID.")(fn)
    fn = click.option(
        "--target", help="Only this target (subscription id, channel, platform:shop)."
    )(fn)
    fn = click.option("--kind", type=click.Choice(KINDS), help="Only this kind.")(fn)
    return fn


def _line(row: dict[str, Any]) -> str:
    error = f"  {row['last_error'][:60]}" if row.get("last_error") else ""
    return (
        f"{row['id']:>7} {row['state']:<8} {row['kind']:<13} {row['target']:<20} "
        f"tries={row['attempts']}/{row['sends']} next={row['next_attempt_at'][:19]}{error}"
    )


@click.group()
def outbox() -> None:
    """Inspect the outbox and re-send messages by hand."""


@outbox.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only rows in this state.")
@click.option("--dead", is_flag=True, help="Same as --state dead.")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@filter_options
@config_options
def list_(
    state: str | None,
    dead: bool,
    limit: int,
    as_json: bool,
    kind: str | None,
    target: str | None,
    order_key: str | None,
    since: str | None,
    config: Path,
    db: Path | None,
) -> None:
    """List outbox rows, newest first (tries = failed attempts / sends).

    \b
    Examples:
      orderhook outbox list
      orderhook outbox list --dead
      orderhook outbox list --kind subscription --target 3 --state pending
      orderhook outbox list --order douyin:acme:6912345 --json
    """
    store = Store(load_settings(config, db).db)
    flt = delivery_sql.RowFilter(
        state="dead" if dead else state, kind=kind, target=target, order_key=order_key, since=since
    )
    rows = store.run_read(lambda conn: delivery_sql.list_rows(conn, flt, limit=limit))
    for row in rows:
        click.echo(json.dumps(row, ensure_ascii=False) if as_json else _line(row))
    if not as_json:
        counts = store.run_read(delivery_sql.state_counts)
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "empty"
        click.echo(f"({len(rows)} shown; outbox: {summary})", err=True)


@outbox.command("show")
@click.argument("row_id", type=int)
@config_options
def show(row_id: int, config: Path, db: Path | None) -> None:
    """Show one row: its payload and every attempt (request, status, body, duration).

    \b
    Example:
      orderhook outbox show 42
    """
    store = Store(load_settings(config, db).db)
    row = store.run_read(delivery_sql.get_row, row_id)
    if row is None:
        raise click.ClickException(f"no outbox row {row_id}")
    click.echo(json.dumps(row, ensure_ascii=False, indent=2))


@outbox.command("retry")
@click.argument("row_id", type=int, required=False)
@click.option("--dead", is_flag=True, help="Re-send every dead row (narrow with the filters).")
@filter_options
@config_options
def retry(
    row_id: int | None,
    dead: bool,
    kind: str | None,
    target: str | None,
    order_key: str | None,
    since: str | None,
    config: Path,
    db: Path | None,
) -> None:
    """Queue rows again now, with a fresh attempt budget (a running hub sends them).

    \b
    Examples:
      orderhook outbox retry 42
      orderhook outbox retry --dead
      orderhook outbox retry --dead --kind subscription --target 3
      orderhook outbox retry --dead --since 2026-11-11T00:00:00Z
    """
    if (row_id is None) == (not dead):
        raise click.UsageError("give either a row id or --dead")
    store = Store(load_settings(config, db).db)
    if row_id is not None:
        if any(v is not None for v in (kind, target, order_key, since)):
            raise click.UsageError("filters go with --dead, not with a row id")
        if not store.run(delivery_sql.requeue, [row_id]):
            raise click.ClickException(
                f"outbox row {row_id} does not exist, is being sent, or is already done"
            )
        click.echo(f"queued row {row_id} again")
        return
    flt = delivery_sql.RowFilter(
        state="dead", kind=kind, target=target, order_key=order_key, since=since
    )
    ids = store.run_read(delivery_sql.matching_ids, flt)
    requeued = 0
    chunk = 500
    with click.progressbar(length=len(ids), label="re-queueing", file=sys.stderr) as bar:
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            requeued += len(store.run(delivery_sql.requeue, part))
            bar.update(len(part))
    click.echo(f"queued {requeued} dead row(s) again")


commands = [outbox]
