"""The `orderhook` command line. Each command group lives in its own module here."""

from __future__ import annotations

import click

from hub.cli import (
    notify,
    outbox,
    reconcile,
    rules,
    sandbox,
    sandbox_live,
    serve,
    subscriptions,
    users,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="orderhook")
def cli() -> None:
    """orderhook: webhook hub and debugging sandbox for e-commerce orders.

    \b
    Start here:
      orderhook init                 # write ./orderhook.toml
      orderhook demo                 # hub + demo pushes, prints where to look
      orderhook serve                # the hub on ./orderhook.toml
      orderhook users add ana --role operator
      orderhook rules explain 4242424242
      orderhook doctor URL -p standard       # why does this callback fail?
      orderhook browse                       # every request, in Datasette
    """


for module in (
    serve,
    users,
    notify,
    reconcile,
    rules,
    outbox,
    subscriptions,
    sandbox,
    sandbox_live,
):
    for command in module.commands:
        cli.add_command(command)


def main() -> None:
    cli()
