"""`orderhook users`: people and systems that call the API, each with one role."""

from __future__ import annotations

from pathlib import Path

import click

from hub.auth import ROLES, issue_token
from hub.cli.options import config_options, load_settings
from hub.store import Store, queries


@click.group()
def users() -> None:
    """Manage API users and their tokens."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="The user's one role.")
@config_options
def add(name: str, role: str, config: Path, db: Path | None) -> None:
    """Create a user (or a new token for an existing one) and print the token once.

    \b
    Examples:
      orderhook users add ana --role operator
      orderhook users add erp --role admin --db /var/lib/orderhook/hub.db
      curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8600/api/me
    """
    store = Store(load_settings(config, db).db)

    def make(conn):  # type: ignore[no-untyped-def]
        existing = queries.find_user(conn, name)
        if existing and existing["role"] != role:
            raise click.ClickException(
                f"user {name!r} exists with role {existing['role']!r}; roles are not changed here"
            )
        return issue_token(conn, name, role)

    token = store.run(make)
    click.echo(token)
    click.echo(f"(token for {name}, role {role}; it is shown only this once)", err=True)


@users.command("list")
@config_options
def list_(config: Path, db: Path | None) -> None:
    """List users, their roles and how many live tokens each has.

    \b
    Example:
      orderhook users list
    """
    store = Store(load_settings(config, db).db)
    for user in store.run_read(queries.list_users):
        state = "disabled" if user["disabled"] else f"{user['tokens']} token(s)"
        click.echo(f"{user['name']:<24} {user['role']:<11} {state}")


@users.command("revoke")
@click.argument("name")
@config_options
def revoke(name: str, config: Path, db: Path | None) -> None:
    """Revoke every token of a user.

    \b
    Example:
      orderhook users revoke ana
    """
    store = Store(load_settings(config, db).db)

    def drop(conn):  # type: ignore[no-untyped-def]
        user = queries.find_user(conn, name)
        if user is None:
            raise click.ClickException(f"no user {name!r}")
        return queries.revoke_tokens(conn, user["id"])

    click.echo(f"revoked {store.run(drop)} token(s) of {name}")


commands = [users]
