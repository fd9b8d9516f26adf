"""Options shared by commands, and the one way commands load settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hub import settings as settings_mod
from hub.settings import ConfigError, Settings

F = Callable[..., Any]


def config_options(fn: F) -> F:
    fn = click.option(
        "--db",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="ORDERHOOK_DB",
        help="SQLite database file (overrides hub.db).",
    )(fn)
    fn = click.option(
        "--config",
        "-c",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="ORDERHOOK_CONFIG",
        default=settings_mod.DEFAULT_CONFIG,
        show_default=True,
        help="The TOML configuration file.",
    )(fn)
    return fn


def load_settings(config: Path, db: Path | None = None, **overrides: Any) -> Settings:
    try:
        loaded = settings_mod.load(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    changes = {k: v for k, v in overrides.items() if v is not None}
    if db is not None:
        changes["db"] = db.absolute()
    return dataclasses.replace(loaded, **changes) if changes else loaded
