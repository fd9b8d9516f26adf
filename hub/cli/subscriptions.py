"""`orderhook subscriptions`: the merchant's systems that receive canonical order events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from hub.cli.options import config_options, load_settings
from hub.delivery import config as delivery_config
from hub.delivery import subscriptions as subs
from hub.delivery.guard import TargetRefused
from hub.model import Kind
from hub.store import Store, delivery_sql


@click.group()
def subscriptions() -> None:
    """Manage event subscriptions (ERP, WMS, BI endpoints)."""


@subscriptions.command("add")
@click.argument("url")
@click.option("--name", default="", help="A label (default: the URL).")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice([k.value for k in Kind]),
    help="Only these event kinds (repeat; default all).",
)
@click.option("--platform", "platforms", multiple=True, help="Only these platforms (repeat).")
@click.option("--shop", "shops", multiple=True, help="Only these shops (repeat).")
@click.option("--no-payload", is_flag=True, help="Leave the platform's raw payload out.")
@click.option("--secret", help="Use this whsec_ secret instead of a fresh one.")
@config_options
def add(
    url: str,
    name: str,
    kinds: tuple[str, ...],
    platforms: tuple[str, ...],
    shops: tuple[str, ...],
    no_payload: bool,
    secret: str | None,
    config: Path,
    db: Path | None,
) -> None:
    """Subscribe a URL to order events and print its signing secret once.

    \b
    Examples:
      orderhook subscriptions add https://erp.example.com/hooks/orders --name erp
      orderhook subscriptions add https://wms.example.com/in --kind paid --kind cancelled
      orderhook subscriptions add https://bi.example.com/e --platform douyin --no-payload
    """
    settings = load_settings(config, db)
    new = subs.NewSubscription(
        url=url,
        name=name,
        kinds=list(kinds),
        platforms=list(platforms),
        shops=list(shops),
        include_payload=not no_payload,
        secret=secret,
    )
    try:
        new.validate(delivery_config.of(settings))
    except (TargetRefused, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    sub = Store(settings.db).run(subs.add, new)
    click.echo(f"subscription {sub['id']} -> {sub['url']}")
    click.echo(f"secret: {sub['secret']}")
    click.echo("(verify deliveries with this secret; it is shown only this once)", err=True)


def _describe(sub: dict[str, Any]) -> str:
    state = f"disabled ({sub['disabled_reason']})" if sub["disabled_at"] else "active"
    if sub.get("old_secret") and sub.get("old_secret_until"):
        state += f", rotating until {sub['old_secret_until'][:19]}"
    filters = [
        f"{label}={','.join(sub[key])}"
        for key, label in (("kinds", "kinds"), ("platforms", "platforms"), ("shops", "shops"))
        if sub[key]
    ]
    return f"{sub['id']:>4} {sub['name']:<20} {sub['url']:<40} {' '.join(filters) or 'all'} {state}"


@subscriptions.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (no secrets).")
@config_options
def list_(as_json: bool, config: Path, db: Path | None) -> None:
    """List subscriptions with their filters and state.

    \b
    Examples:
      orderhook subscriptions list
      orderhook subscriptions list --json
    """
    store = Store(load_settings(config, db).db)
    for sub in store.run_read(delivery_sql.list_subscriptions):
        click.echo(json.dumps(subs.public(sub)) if as_json else _describe(sub))


def _change(config: Path, db: Path | None, fn: Any, *args: Any) -> Any:
    store = Store(load_settings(config, db).db)
    try:
        return store.run(fn, *args)
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@subscriptions.command("disable")
@click.argument("sub_id", type=int)
@config_options
def disable(sub_id: int, config: Path, db: Path | None) -> None:
    """Stop deliveries to a subscription; its waiting messages are parked.

    \b
    Example:
      orderhook subscriptions disable 3
    """
    parked = _change(config, db, subs.disable, sub_id)
    click.echo(f"subscription {sub_id} disabled; {parked} waiting message(s) parked")


@subscriptions.command("enable")
@click.argument("sub_id", type=int)
@config_options
def enable(sub_id: int, config: Path, db: Path | None) -> None:
    """Resume deliveries (after a 410 or a disable); parked messages are queued again.

    \b
    Example:
      orderhook subscriptions enable 3
    """
    queued = _change(config, db, subs.enable, sub_id)
    click.echo(f"subscription {sub_id} enabled; {queued} parked message(s) queued again")


@subscriptions.command("rotate")
@click.argument("sub_id", type=int)
@click.option("--grace-hours", type=click.FloatRange(0), help="Old secret still signs this long.")
@click.option("--secret", help="Use this whsec_ secret instead of a fresh one.")
@config_options
def rotate(
    sub_id: int, grace_hours: float | None, secret: str | None, config: Path, db: Path | None
) -> None:
    """Give a subscription a new secret; both sign deliveries during the grace period.

    \b
    Examples:
      orderhook subscriptions rotate 3
      orderhook subscriptions rotate 3 --grace-hours 2
    """
    settings = load_settings(config, db)
    grace = (
        grace_hours
        if grace_hours is not None
        else delivery_config.of(settings).rotation_grace_hours
    )
    sub = _change(config, db, subs.rotate, sub_id, grace, secret)
    click.echo(f"secret: {sub['secret']}")
    click.echo(f"(the old secret also signs until {sub['old_secret_until']})", err=True)


commands = [subscriptions]
