"""Platform connectors, looked up by name.

Every module in this package that defines a module-level `connector` object is
registered under `connector.name`. The pipeline only ever calls `get(name)`: adding a
platform is adding a module here, nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import TYPE_CHECKING, Any

from connectors.base import ApiClient, Connector, Inbound, Rejection, Reply

if TYPE_CHECKING:
    from hub.settings import Shop

__all__ = ["ApiClient", "Connector", "Inbound", "Rejection", "Reply", "api_client", "get", "names"]

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


def api_client(shop: Shop, **kwargs: Any) -> ApiClient:
    """The platform API client for a shop: `connectors.<platform>.api.Client(shop, **kwargs)`.

    Raises LookupError when the platform has no API client."""
    try:
        module = importlib.import_module(f"{__name__}.{shop.platform}.api")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(f"{__name__}.{shop.platform}"):
            raise LookupError(f"platform {shop.platform!r} has no API client") from None
        raise
    client: ApiClient = module.Client(shop, **kwargs)
    return client
