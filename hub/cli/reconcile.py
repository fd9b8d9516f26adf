"""`orderhook reconcile SHOP --since ...`: pull a shop's changed orders by hand."""

from __future__ import annotations

import asyncio
import io
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from connectors.apiclient import Page
from hub import reconcile as reconcile_mod
from hub.cli.options import config_options, load_settings
from hub.model import iso_utc, parse_iso, utcnow
from hub.store import Store, reconcile_sql

DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_when(text: str, now: datetime) -> datetime:
    """`90m`, `2h`, `1d` ago, or an ISO time (naive = UTC)."""
    match = DURATION.match(text.strip())
    if match:
        return now - timedelta(**{UNITS[match.group(2)]: float(match.group(1))})
    try:
        return parse_iso(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: use a duration (30m, 2h, 1d) or an ISO time (2026-11-11T00:00:00+08:00)"
        ) from None


@click.command()
@click.argument("shop")
@click.option("--since", required=True, help="Start: a duration ago (30m, 2h, 1d) or an ISO time.")
@click.option("--until", default=None, help="End (default: now); same forms as --since.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (for scripts).")
@config_options
def reconcile(
    shop: str, since: str, until: str | None, as_json: bool, config: Path, db: Path | None
) -> None:
    """Pull SHOP's orders changed in a window and feed what the pushes missed into the hub.

    Uses the shop's API client (api_base in the config may point at a local fake),
    records every answer, dedupes against pushes and prints what was new. Exit code 0
    when the window was pulled completely, 1 when the platform failed or answered
    from the last-good cache only.

    \b
    Examples:
      orderhook reconcile acme-jd --since 2h
      orderhook reconcile acme-tmall --since 2026-11-11T00:00+08:00 --until 2026-11-11T02:00+08:00
      orderhook reconcile acme-pdd --since 30m --json
    """
    settings = load_settings(config, db)
    found = settings.shops.get(shop)
    if found is None:
        raise click.ClickException(
            f"no shop {shop!r} in {config} (known: {', '.join(settings.shops)})"
        )
    if not reconcile_mod.has_api(found):
        raise click.ClickException(
            f"shop {shop!r} ({found.platform}): no API client, no app_key, or reconcile = false"
        )
    try:
        reconcile_mod.check_shop(found)
    except ValueError as exc:
        raise click.ClickException(f"shop {shop!r}: {exc}") from None
    now = utcnow()
    start = parse_when(since, now)
    end = parse_when(until, now) if until else now
    if start >= end:
        raise click.BadParameter("--since must be before --until", param_hint="--since")
    total = max(1, int((end - start).total_seconds()))
    result, state = asyncio.run(_run(Path(settings.db), found, start, end, total, quiet=as_json))
    summary = _summary(result, state)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        _print(summary)
    if result.outcome != "ok":
        raise SystemExit(1)


async def _run(
    db: Path, shop: Any, start: datetime, end: datetime, total: int, *, quiet: bool
) -> tuple[reconcile_mod.RunResult, dict[str, Any] | None]:
    """The run's result, and the shop's reconcile state after it (None: never pulled)."""
    store = Store(db)
    await store.start()
    try:
        with click.progressbar(
            length=total, label=f"{shop.name}: pulling", file=io.StringIO() if quiet else None
        ) as bar:
            done = 0

            def progress(page: Page, result: reconcile_mod.RunResult) -> None:
                nonlocal done
                if page.window is not None:
                    reached = int((page.window[1] - start).total_seconds())
                    if reached > done:
                        bar.update(reached - done)
                        done = reached
                bar.label = (
                    f"{shop.name}: {result.pages} pages, {result.seen} events, {result.new} new"
                )

            result = await reconcile_mod.reconcile_shop(
                store, shop, start, end, trigger="manual", progress=progress
            )
        states = await store.read(reconcile_sql.states, shop.name)
        return result, (states[0] if states else None)
    finally:
        await store.stop()


def _summary(result: reconcile_mod.RunResult, state: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "shop": result.shop,
        "platform": result.platform,
        "window": [iso_utc(result.start), iso_utc(result.end)],
        "run_id": result.run_id,
        "outcome": result.outcome,
        "pages": result.pages,
        "stale_pages": result.stale_pages,
        "events_seen": result.seen,
        "missed_by_pushes": result.new,
        "already_known": result.duplicates,
        "missed_by_kind": dict(sorted(result.new_by_kind.items())),
        "missed": result.missed[:50],
        "error": {"code": result.error_code, "message": result.error}
        if result.error_code
        else None,
        # the block as it stands after this run (a transient failure leaves it as it was)
        "blocked": state["blocked"] if state else None,
        "unblocked": result.unblocked,  # the block this run ended: since, code, tries
    }


def _print(s: dict[str, Any]) -> None:
    click.echo(f"\nreconcile {s['shop']} ({s['platform']}) {s['window'][0]} .. {s['window'][1]}")
    click.echo(f"  outcome          {s['outcome']} (run {s['run_id']})")
    click.echo(f"  pages            {s['pages']} ({s['stale_pages']} from the last-good cache)")
    click.echo(f"  events seen      {s['events_seen']}")
    click.echo(f"  already known    {s['already_known']}")
    kinds = ", ".join(f"{k} {n}" for k, n in s["missed_by_kind"].items())
    click.echo(f"  missed by pushes {s['missed_by_pushes']}" + (f" ({kinds})" if kinds else ""))
    for event in s["missed"][:20]:
        click.echo(f"    {event['order_id']}  {event['kind']:<16} {event['occurred_at']}")
    if s["error"]:
        click.echo(f"  error            {s['error']['code']}: {s['error']['message']}", err=True)
    if s["blocked"]:
        _print_blocked(s["shop"], s["blocked"])
    elif s["unblocked"]:
        was = s["unblocked"]
        click.echo(
            f"  unblocked        this pull worked: the block since {was['since']} "
            f"({was['code']}, {_tries(was['tries'])}) is cleared\n"
            "                   restart the hub if it still runs with the old config"
        )


def _print_blocked(shop: str, block: dict[str, Any]) -> None:
    since = block["since"]
    ago = _ago(utcnow() - parse_iso(since))
    next_try = block["next_try_at"] or "not set (the hub sets it after its own tries)"
    click.echo(
        f"  BLOCKED          since {since} ({ago} ago, {_tries(block['tries'])}): "
        f"{block['code']}: {block['error']}\n"
        f"                   the hub's next try: {next_try}\n"
        "  to clear it      fix the shop's token or credentials in the config and restart\n"
        "                   the hub (it tries at once); a pull that works clears the block.\n"
        f"                   Check a fix now with: orderhook reconcile {shop} --since 1h"
    )


def _tries(n: int) -> str:
    return "1 try" if n == 1 else f"{n} tries"


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if hours < 48 else f"{hours // 24}d {hours % 24}h"


commands = [reconcile]
