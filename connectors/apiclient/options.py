"""A shop's API options: the `api_*` limits, positive numbers, config-time checks,
options that may name an environment variable (`env:VAR`) and the seller's token."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import httpx

from connectors.base import AuthExpired

if TYPE_CHECKING:
    from hub.settings import Shop


LIMIT_OPTIONS = (  # shop option, PlatformRuntime argument, type
    ("api_rate", "rate", float),
    ("api_burst", "burst", int),
    ("api_breaker_failures", "breaker_threshold", int),
    ("api_breaker_reset_seconds", "breaker_reset", float),
    ("api_timeout_seconds", "timeout", float),
)


def limits_from(shop: Shop | None) -> dict[str, Any]:
    """PlatformRuntime arguments from a shop's `api_*` options; ValueError names the
    option and what is wrong with it."""
    options = shop.options if shop is not None else {}
    limits: dict[str, Any] = {}
    for key, name, cast in LIMIT_OPTIONS:
        if key in options:
            number = positive(options, key, cast=cast)
            limits[name] = httpx.Timeout(number) if name == "timeout" else number
    return limits


def positive(options: dict[str, Any], key: str, default: Any = None, cast: Any = float) -> Any:
    """A positive number option (`cast` of it), or ValueError naming the option."""
    value = options.get(key, default)
    try:
        number = cast(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number <= 0:
        raise ValueError(f"options.{key}: {value!r} must be a positive number")
    return number


def check_options(shop: Shop) -> None:
    """Validate a shop's API options at config time (ValueError with the option name)."""
    limits_from(shop)
    module = __import__(f"connectors.{shop.platform}.api", fromlist=["Client"])
    methods = module.Client.sign_methods
    method = shop.options.get("sign_method", methods[0])
    if method not in methods:
        raise ValueError(f"options.sign_method: {method!r} is not one of {', '.join(methods)}")


def option_secret(shop: Shop, key: str, env: dict[str, str] | None = None) -> str | None:
    """A shop option that may be `env:VAR` (tokens are credentials too)."""
    value = shop.options.get(key)
    if value is None or value == "":
        return None
    text = str(value)
    if text.startswith("env:"):
        found = (os.environ if env is None else env).get(text[4:])
        if not found:
            raise AuthExpired(
                "missing_token",
                f"environment variable {text[4:]} is not set (options.{key} of shop {shop.name})",
            )
        return found
    return text


def seller_token(
    shop: Shop, keys: tuple[str, ...], env: dict[str, str] | None = None
) -> str | None:
    """The seller's token: the first of the options `keys` the shop sets (each may be
    `env:VAR`; one naming an unset variable is `missing_token`), or None."""
    for key in keys:
        token = option_secret(shop, key, env)
        if token:
            return token
    return None


def require_token(
    shop: Shop, keys: tuple[str, ...], call: str, env: dict[str, str] | None = None
) -> str:
    """The seller's token for a call the platform only answers with one; without it
    `AuthExpired("missing_token")` saying which option to set, so nothing is sent."""
    token = seller_token(shop, keys, env)
    if token is None:
        names = " or ".join(f"options.{key}" for key in keys)
        raise AuthExpired(
            "missing_token",
            f"shop {shop.name} has no seller token configured and {call} needs one: "
            f"set {names} (the token itself or env:VAR)",
        )
    return token
