"""`orderhook rules`: why an order went where it went, and what a rules edit would change."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click

from hub import settings as settings_mod
from hub.cli.options import config_options, load_settings
from hub.dispatch import rules as routing
from hub.dispatch.config import DispatchConfig
from hub.store import Store, dispatch_sql, orders_sql

PAGE = 1000


@click.group()
def rules() -> None:
    """Explain and dry-run the [dispatch] routing rules."""


@rules.command("explain")
@click.argument("order_id")
@click.option("--shop", help="Only the order of this shop (an id can repeat across shops).")
@config_options
def explain(order_id: str, shop: str | None, config: Path, db: Path | None) -> None:
    """Say which rule routes ORDER_ID and, for each rule above it, the condition that failed.

    \b
    Examples:
      orderhook rules explain 4242424242
      orderhook rules explain 4242424242 --shop acme --config /etc/orderhook/orderhook.toml
    """
    settings = load_settings(config, db)
    cfg: DispatchConfig = settings.sections["dispatch"]
    store = Store(settings.db)
    found = [
        o for o in store.run_read(orders_sql.find_orders, order_id) if shop in (None, o["shop"])
    ]
    if not found:
        raise click.ClickException(f"no order {order_id!r} in {settings.db}")
    for order in found:
        key = (order["platform"], order["shop"], order["order_id"])
        click.echo(f"order {'/'.join(key)}: {order['status']}, {_facts_line(order)}")
        steps, chosen = routing.explain(cfg, routing.order_facts(order))
        for step in steps:
            click.echo("  " + step.describe())
        if chosen.rule is None:
            click.echo(f"  no rule matched -> default group {chosen.group}")
        stored = order["route_group"]
        if stored is None:
            click.echo(
                "  not routed yet (a task is made when the order reaches: "
                f"{', '.join(cfg.route_on)})"
            )
        elif (stored, order["route_rule"]) != (chosen.group, chosen.rule):
            click.echo(
                f"  routed earlier to {stored} by {_rule(order['route_rule'])}; "
                "the rules have changed since"
            )
        task = store.run_read(dispatch_sql.task_for_order, key)
        if task is not None:
            holder = f", {task['assignee']}" if task["assignee"] else ""
            click.echo(
                f"  task {task['id']}: {task['state']} in {task['grp']} "
                f"({task['queue']} queue{holder})"
            )
        for row in reversed(store.run_read(lambda c, k=key: dispatch_sql.decisions(c, key=k))):
            who = f" {row['operator']}" if row["operator"] else ""
            click.echo(f"  {row['at'][:19]} {row['decision']}{who}: {row['detail']}")
        for change in store.run_read(orders_sql.transitions, key):
            moved = "" if change["applied"] else f" (ignored: {change['note']})"
            click.echo(
                f"  {change['at'][:19]} status {change['from_status'] or '-'} -> "
                f"{change['to_status']} by {change['cause']}{moved}"
            )


@rules.command("test")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--show", default=50, show_default=True, help="How many changed orders to list.")
@config_options
def test(file: Path, show: int, config: Path, db: Path | None) -> None:
    """Dry-run the rules in FILE against the recorded orders; list what would move.

    FILE is a config file (only its [dispatch] section is used); the orders come from
    the database of --config/--db. Nothing is written.

    \b
    Examples:
      cp orderhook.toml next.toml && $EDITOR next.toml
      orderhook rules test next.toml
      orderhook rules test next.toml --db /var/lib/orderhook/hub.db --show 200
    """
    try:
        candidate: DispatchConfig = settings_mod.load(file).sections["dispatch"]
    except settings_mod.ConfigError as exc:
        raise click.ClickException(f"the new rules do not load: {exc}") from None
    settings = load_settings(config, db)
    store = Store(settings.db)
    total = store.run_read(orders_sql.count_orders)
    moves: Counter[tuple[str, str]] = Counter()
    changed: list[str] = []
    checked = 0
    after = None
    with click.progressbar(length=total, label="orders", file=sys.stderr) as bar:
        while True:
            page = store.run_read(lambda c, a=after: orders_sql.all_orders(c, after=a, limit=PAGE))
            if not page:
                break
            for order in page:
                if order["route_group"] is None:
                    continue
                checked += 1
                new = routing.route(candidate, routing.order_facts(order))
                old = (order["route_group"], order["route_rule"])
                if old != (new.group, new.rule):
                    moves[(old[0], new.group)] += 1
                    changed.append(
                        f"{order['platform']}/{order['shop']}/{order['order_id']}: "
                        f"{old[0]} by {_rule(old[1])} -> {new.group} by {_rule(new.rule)}"
                    )
            bar.update(len(page))
            last = page[-1]
            after = (last["platform"], last["shop"], last["order_id"])
    for line in changed[:show]:
        click.echo(line)
    if len(changed) > show:
        click.echo(f"... and {len(changed) - show} more (--show to list them)")
    summary = ", ".join(f"{a} -> {b}: {n}" for (a, b), n in moves.most_common())
    click.echo(
        f"{checked} routed orders checked, {len(changed)} would be routed differently"
        + (f" ({summary})" if summary else "")
    )


def _rule(name: str | None) -> str:
    return f"rule {name!r}" if name else "no rule (default)"


def _facts_line(order: dict[str, Any]) -> str:
    facts = order["facts"]
    parts = [f"amount {order['amount']} {order['currency'] or ''}".strip()]
    parts += [
        f"{k} {v if not isinstance(v, list) else ','.join(v)}" for k, v in sorted(facts.items())
    ]
    return ", ".join(parts)


commands = [rules]
