"""Datasette on the hub's database, with the tables described and the stored queries
from `datasette.yaml`, and bodies shown as text (sandbox/datasette_plugin.py)."""

from __future__ import annotations

import copy
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from datasette.app import Datasette
from datasette.plugins import pm

from sandbox import datasette_plugin

METADATA = files("sandbox").joinpath("datasette.yaml")
DB_KEY = "orderhook"  # the database's name inside datasette.yaml


@cache
def _metadata_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(METADATA.read_text(encoding="utf-8"))
    return loaded


def metadata_for(db_path: Path) -> dict[str, Any]:
    """datasette.yaml with its database entry renamed to the file's name (Datasette's key)."""
    meta = copy.deepcopy(_metadata_file())
    meta["databases"] = {db_path.stem: meta["databases"][DB_KEY]}
    return meta


def build(db_path: Path) -> Datasette:
    if not pm.is_registered(datasette_plugin) and pm.get_plugin("orderhook") is None:
        pm.register(datasette_plugin, name="orderhook")
    return Datasette(
        files=[str(db_path)],
        metadata=metadata_for(db_path),
        settings={"sql_time_limit_ms": 5000, "truncate_cells_html": 0},
    )
