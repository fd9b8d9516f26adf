"""`orderhook simulate | listen | doctor`: talk to endpoints as a platform would.

Exit codes (docs/sandbox.md):
  simulate PLATFORM EVENT: 0 every push got a 2xx, 1 some did not, 2 usage error
  simulate scenario:       0 every message got an answer, 1 some got none, 2 bad file
  listen:                  0 stopped after --count or Ctrl-C, 1 the hub refused the stream
  doctor:                  0 healthy, 1 a problem found, 3 only warnings, 2 usage error
"""

from __future__ import annotations

import asyncio
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from hub.cli.options import config_options, load_settings
from hub.cli.sandbox import emit_json
from hub.model import Kind
from hub.settings import Settings
from sandbox import listen as listening
from sandbox import simulate as simulating
from sandbox.sending import SendError, bare_client, endpoint_url, resolve_shop

EVENTS = [k.value for k in Kind if k is not Kind.OTHER]


def optional_settings(config: Path, db: Path | None) -> Settings | None:
    """The config's settings when there is a config file; None lets --secret do."""
    return load_settings(config, db) if config.exists() else None


def _shop(platform: str, shop: str, settings: Settings | None, secret: str | None, **kw: Any):  # type: ignore[no-untyped-def]
    try:
        return resolve_shop(platform, shop, settings=settings, secret=secret, **kw)
    except SendError as exc:
        raise click.UsageError(str(exc)) from None


def _base_url(url: str | None, settings: Settings | None) -> str:
    if url:
        return url
    if settings is None:
        raise click.UsageError("give --url (or a config whose hub to send to)")
    return f"http://{settings.host}:{settings.port}"


# --- simulate ----------------------------------------------------------------------------


def push_command(platform: str) -> click.Command:
    """`orderhook simulate <platform> EVENT`: one signed push, as the platform sends it."""

    @click.command(
        name=platform,
        help=f"""Send {platform} pushes, signed and shaped as {platform} sends them.

        \b
        Examples:
          orderhook simulate {platform} paid --shop acme            # to the hub in the config
          orderhook simulate {platform} created --shop acme --url http://127.0.0.1:3000/hook \\
              --secret SECRET --count 5
        \b
        Exit codes: 0 every push got a 2xx, 1 some did not.
        """,
    )
    @click.argument("event", type=click.Choice(EVENTS))
    @click.option("--shop", required=True, help="Shop name (as in the config or the URL).")
    @click.option("--url", help="Endpoint URL; a bare base URL gets /webhooks/P/SHOP appended.")
    @click.option("--secret", help="Sign with this secret (default: the shop's in the config).")
    @click.option("--app-key", help="The app key to put in the push (platforms that send one).")
    @click.option("--order-id", help="Order id (default: a random 19-digit id).")
    @click.option("--amount", help="Order amount, e.g. 99.90.")
    @click.option("--count", type=click.IntRange(1, 100000), default=1, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print each exchange as JSON.")
    @config_options
    def command(
        event: str,
        shop: str,
        url: str | None,
        secret: str | None,
        app_key: str | None,
        order_id: str | None,
        amount: str | None,
        count: int,
        as_json: bool,
        config: Path,
        db: Path | None,
    ) -> None:
        settings = optional_settings(config, db)
        the_shop = _shop(platform, shop, settings, secret, app_key=app_key)
        try:
            value = Decimal(amount) if amount is not None else None
        except InvalidOperation:
            raise click.BadParameter(f"{amount!r} is not a number", param_hint="--amount") from None
        target = endpoint_url(_base_url(url, settings), platform, shop)
        results = asyncio.run(_send_pushes(the_shop, Kind(event), order_id, value, count, target))
        for r in results:
            click.echo(json.dumps(r, ensure_ascii=False) if as_json else _push_line(r))
        if any(r["status"] is None or not 200 <= r["status"] < 300 for r in results):
            sys.exit(1)

    return command


async def _send_pushes(
    shop: Any, kind: Kind, order_id: str | None, amount: Decimal | None, count: int, url: str
) -> list[dict[str, Any]]:
    import random

    out = []
    async with bare_client(timeout=10.0) as client:
        for _ in range(count):
            oid = order_id or str(random.randrange(10**18, 10**19))
            msg = simulating.one_push(shop, kind, oid, amount=amount)
            entry: dict[str, Any] = {"order_id": oid, "url": url + msg.tail, "status": None}
            try:
                response = await client.post(url + msg.tail, headers=msg.headers, content=msg.body)
                entry.update(status=response.status_code, body=response.text[:500])
            except Exception as exc:  # report it; the next push may still go through
                entry["error"] = f"{type(exc).__name__}: {exc}"
            out.append(entry)
    return out


def _push_line(r: dict[str, Any]) -> str:
    if r["status"] is None:
        return f"order {r['order_id']} -> {r['url']}  failed: {r['error']}"
    return f"order {r['order_id']} -> {r['url']}  {r['status']} {r['body'][:100]}"


@click.command("scenario")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--url", help="Endpoint URL; a bare base URL gets /webhooks/P/SHOP appended.")
@click.option("--secret", help="Sign with this secret (overrides the file and the config).")
@click.option("--seed", type=int, help="Random seed, for a repeatable run.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-step tally as JSON.")
@config_options
def scenario(
    path: Path,
    url: str | None,
    secret: str | None,
    seed: int | None,
    as_json: bool,
    config: Path,
    db: Path | None,
) -> None:
    """Run a scenario file: bursts, redeliveries, out-of-order events, algorithm changes.

    \b
    Examples:
      orderhook simulate scenario big-sale.toml --url http://127.0.0.1:8600
      orderhook simulate scenario rehearsal.json --seed 7 --json
    \b
    The file format is in docs/sandbox.md. Exit codes: 0 every message got an answer,
    1 some got none (connection errors), 2 the file is wrong.
    """
    try:
        plan = simulating.load_scenario(path)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    settings = optional_settings(config, db)
    shop = _shop(plan.platform, plan.shop, settings, secret or plan.secret)
    target = endpoint_url(_base_url(url, settings), plan.platform, plan.shop)
    with click.progressbar(
        length=simulating.scenario_size(plan), label="scenario", file=sys.stderr
    ) as bar:
        try:
            results = asyncio.run(
                simulating.run_scenario(
                    plan, shop, target, seed=seed, on_sent=lambda: bar.update(1)
                )
            )
        except (ValueError, SendError) as exc:
            raise click.UsageError(str(exc)) from None
    if as_json:
        emit_json({"url": target, "steps": [r.as_json() for r in results]})
    else:
        for r in results:
            tally = ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items()))
            click.echo(f"{r.step.type:<17} {tally}")
    if any(not k.isdigit() for r in results for k in r.statuses):
        sys.exit(1)


class SimulateGroup(click.Group):
    """Subcommands found at run time: push connectors and channel fakes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = {*simulating.simulators(), *simulating.fake_commands(), "scenario"}
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "scenario":
            return scenario
        if name in simulating.simulators():
            return push_command(name)
        return simulating.fake_commands().get(name)


@click.group(cls=SimulateGroup)
def simulate() -> None:
    """Act as a platform: signed pushes, a local message channel, or a scenario file.

    \b
    Examples:
      orderhook simulate standard paid --shop acme
      orderhook simulate scenario big-sale.toml --url http://127.0.0.1:8600
      orderhook simulate --help                 # every platform this install knows
    """


# --- listen ------------------------------------------------------------------------------


@click.command()
@click.option("--forward-to", required=True, help="Your endpoint; each push is POSTed there.")
@click.option("--hub", "hub_url", help="The hub's base URL (default: from the config).")
@click.option("--token", envvar="ORDERHOOK_TOKEN", required=True, help="Admin/supervisor token.")
@click.option("--secret", help="Re-sign each push with this secret (your endpoint's).")
@click.option("--platform", help="Only this platform's pushes.")
@click.option("--shop", help="Only this shop's pushes.")
@click.option(
    "--outcome",
    default="accepted",
    show_default=True,
    help="Which requests to forward: accepted, all, or a comma list.",
)
@click.option("--after", type=int, help="Start after this request id (default: from now).")
@click.option("--count", type=int, default=0, help="Stop after this many (0: until Ctrl-C).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per exchange.")
@config_options
def listen(
    forward_to: str,
    hub_url: str | None,
    token: str,
    secret: str | None,
    platform: str | None,
    shop: str | None,
    outcome: str,
    after: int | None,
    count: int,
    as_json: bool,
    config: Path,
    db: Path | None,
) -> None:
    """Forward the pushes a running hub accepts to your local endpoint, live.

    \b
    Examples:
      orderhook listen --forward-to http://localhost:3000/webhooks --token $TOKEN
      orderhook listen --forward-to http://localhost:3000/hook --secret whsec_... \\
          --hub https://hub.example.com --platform standard
      orderhook listen --forward-to http://localhost:3000 --after 1200 --count 50 --json
    \b
    Exit codes: 0 stopped (--count reached, or Ctrl-C), 1 the hub refused the stream.
    """
    settings = optional_settings(config, db)
    fwd = listening.Forwarding(forward_to, secret, settings, platform, shop)
    base = _base_url(hub_url, settings)

    def show(exchange: listening.Exchange) -> None:
        click.echo(
            json.dumps(exchange.as_json(), ensure_ascii=False) if as_json else exchange.line()
        )

    def connected() -> None:
        if not as_json:
            click.echo(
                f"listening to {base}, forwarding to {forward_to} (Ctrl-C to stop)", err=True
            )

    try:
        asyncio.run(
            listening.follow(
                base,
                token,
                fwd,
                outcome=outcome,
                after=after,
                count=count,
                on_exchange=show,
                on_connect=connected,
            )
        )
    except listening.StreamError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


commands = [simulate, listen]


# --- doctor ------------------------------------------------------------------------------

MARKS = {"ok": "ok  ", "warn": "WARN", "error": "FAIL"}


@click.command()
@click.argument("url")
@click.option("--platform", "-p", required=True, help="The platform that pushes to URL.")
@click.option("--shop", default="doctor", show_default=True, help="Shop name (config or URL).")
@click.option("--secret", help="The shop's secret (default: from the config).")
@click.option("--app-key", help="The app key the platform would send.")
@click.option(
    "--try-secret",
    "other_secrets",
    multiple=True,
    metavar="LABEL=SECRET",
    help="Other credentials to try when the signature is refused (e.g. test=...).",
)
@click.option("--timeout", type=float, help="The platform's ack timeout (default: its own, 5 s).")
@click.option("--connect-timeout", type=float, default=3.0, show_default=True)
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False), help="Extra trusted CA.")
@click.option("--json", "as_json", is_flag=True, help="Findings as JSON.")
@config_options
def doctor(
    url: str,
    platform: str,
    shop: str,
    secret: str | None,
    app_key: str | None,
    other_secrets: tuple[str, ...],
    timeout: float | None,
    connect_timeout: float,
    cafile: str | None,
    as_json: bool,
    config: Path,
    db: Path | None,
) -> None:
    """Diagnose a callback endpoint as the platform meets it, and say what to fix.

    Checks DNS, TCP (refused / filtered), TLS (expired, host name, chain, days left),
    then sends one signed test push (order 9999999999999999999): path and method,
    test/prod mix-up, handler speed, ack body, and which signature variant it accepts.

    \b
    Examples:
      orderhook doctor https://erp.example.com/webhooks/standard/acme -p standard --secret whsec_...
      orderhook doctor http://127.0.0.1:3000/hook -p standard --shop acme --timeout 3
      orderhook doctor https://erp.example.com/hook -p standard --secret $PROD \\
          --try-secret test=$TEST_SECRET --json
    \b
    Exit codes: 0 healthy, 1 a problem found, 3 only warnings, 2 usage error.
    """
    from sandbox import doctor as doctoring

    settings = optional_settings(config, db)
    pairs = {}
    for entry in other_secrets:
        label, sep, value = entry.partition("=")
        if not sep or not label or not value:
            raise click.BadParameter("use LABEL=SECRET", param_hint="--try-secret")
        pairs[label] = value
    the_shop = _shop(platform, shop, settings, secret, app_key=app_key)
    check = doctoring.Checkup(
        url=endpoint_url(url, platform, shop),
        shop=the_shop,
        timeout=timeout or doctoring.platform_timeout(platform),
        connect_timeout=connect_timeout,
        cafile=cafile,
        other_secrets=pairs,
    )
    report = asyncio.run(doctoring.diagnose(check))
    if as_json:
        emit_json(
            {
                "url": report.url,
                "result": report.worst,
                "findings": [f.as_json() for f in report.findings],
            }
        )
    else:
        click.echo(f"doctor {report.url} ({platform})")
        for f in report.findings:
            click.echo(f"  {MARKS[f.severity]} {f.code}: {f.message}")
            if f.fix:
                click.echo(f"       fix: {f.fix}")
    sys.exit({"ok": 0, "error": 1, "warn": 3}[report.worst])


commands.append(doctor)
