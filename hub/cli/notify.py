"""`orderhook notify`: see the configured notification channels and try one out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import httpx

from connectors.notify import SEVERITIES, Message
from hub.cli.options import config_options, load_settings
from hub.notify import describe, section, send_now


@click.group()
def notify() -> None:
    """Notification channels (WeCom, DingTalk, Feishu/Lark, email, signed webhook)."""


@notify.command("channels")
@config_options
def channels(config: Path, db: Path | None) -> None:
    """List the channels in [notify.channels], credentials masked; '*' marks alert channels.

    \b
    Example:
      orderhook notify channels
    """
    parsed = section(load_settings(config, db))
    if not parsed.channels:
        click.echo("no channels: add [notify.channels.NAME] tables (docs/notifications.md)")
        return
    for name, channel in sorted(parsed.channels.items()):
        shown = describe(channel)
        mark = "*" if name in parsed.alerts else " "
        rest = ", ".join(f"{k}={v}" for k, v in shown.items() if k not in ("name", "kind"))
        click.echo(f"{mark} {name:<20} {channel.kind:<9} {rest}")


@notify.command("test")
@click.argument("channel")
@click.option("--title", default="orderhook test", show_default=True)
@click.option("--text", default="If you can read this, the channel works.", show_default=True)
@click.option("--severity", type=click.Choice(SEVERITIES), default="info", show_default=True)
@config_options
def test(channel: str, title: str, text: str, severity: str, config: Path, db: Path | None) -> None:
    """Send one message to CHANNEL now (not through the outbox) and say what the service said.

    Exits with status 1 when the service refuses it; the message names the setting to fix.

    \b
    Examples:
      orderhook notify test ops-wecom
      orderhook notify test ops-mail --title "Drill" --text "Backup restore drill at 14:00"
    """
    parsed = section(load_settings(config, db))
    found = parsed.channels.get(channel)
    if found is None:
        known = ", ".join(sorted(parsed.channels)) or "none configured"
        raise click.ClickException(f"no channel {channel!r} (known: {known})")

    async def run() -> None:
        async with httpx.AsyncClient() as http:
            result = await send_now(found, Message(title, text, severity), http)
        if not result.ok:
            again = "retry later" if result.retryable else "will not succeed as configured"
            raise click.ClickException(f"{result.detail} [{again}]")
        click.echo(f"sent: {result.detail}")

    asyncio.run(run())


commands = [notify]
