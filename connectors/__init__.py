"""Platform connectors, looked up by name.

Every module in this package that defines a module-level `connector` object is
registered under `connector.name`. The pipeline only ever calls `get(name)`: adding a
platform is adding a module here, nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from connectors.base import Connector, Inbound, Rejection, Reply

__all__ = ["Connector", "Inbound", "Rejection", "Reply", "get", "names"]

_NOT_CONNECTORS = {"base"}


@cache
def _registry() -> dict[str, Connector]:
    found: dict[str, Connector] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in _NOT_CONNECTORS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        connector = getattr(module, "connector", None)
        if connector is not None:
            found[connector.name] = connector
    return found


def get(name: str) -> Connector | None:
    return _registry().get(name)


def names() -> list[str]:
    return sorted(_registry())
