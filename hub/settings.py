"""Settings: one TOML file, validated at start; a bad file fails with its line and the reason.

    [hub]
    db = "orderhook.db"          # ORDERHOOK_DB overrides
    max_body_bytes = 1048576
    retention_days = 30

    [shops.acme-douyin]          # the name in /webhooks/{platform}/{shop}
    platform = "douyin"
    app_key = "..."
    secret = "env:ACME_DOUYIN_SECRET"   # read from the environment
    api_base = "http://127.0.0.1:9001"  # optional: point the API client at a fake
    message_url = "ws://127.0.0.1:9002" # optional: the platform's message channel

Sections other stages own (e.g. `[delivery]`, `[dispatch]`) are parsed by the stage's
own function, named in SECTIONS below; the result is `settings.sections[name]`. A stage
raises `fail(message, *keys)` to report a mistake with its line.
"""

from __future__ import annotations

import importlib
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import connectors

ENV_PREFIX = "ORDERHOOK_"
DEFAULT_CONFIG = "orderhook.toml"


class ConfigError(Exception):
    """A configuration mistake, said as `file:line: where: what`."""

    def __init__(self, message: str, *, path: Path | None = None, line: int | None = None):
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(where + message)
        self.line = line


@dataclass(frozen=True)
class Shop:
    name: str
    platform: str
    secret: str
    app_key: str | None = None
    old_secrets: tuple[str, ...] = ()
    api_base: str | None = None
    message_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def all_secrets(self) -> tuple[str, ...]:
        """The current secret first, then ones still honoured during a rotation."""
        return (self.secret, *self.old_secrets)


@dataclass(frozen=True)
class Settings:
    db: Path
    host: str = "127.0.0.1"
    port: int = 8600
    max_body_bytes: int = 1 << 20
    retention_days: int = 30
    # answer pushes 503 at once while the oldest one waiting for its commit has waited
    # longer than this (0: never): see docs/configuration.md "Overload"
    shed_after_ms: int = 1000
    shops: dict[str, Shop] = field(default_factory=dict)
    source: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    # the certificate the hub serves HTTPS with (`serve --certfile`); tlswatch reads it
    certfile: Path | None = None

    def shop(self, name: str) -> Shop | None:
        return self.shops.get(name)


# Top-level sections owned by other stages: name -> "module:function". The function
# takes (table, fail) and returns the parsed section; `fail(message, *keys)` builds a
# ConfigError pointing at the line of `[name]` (or of the key under it).
SECTIONS: dict[str, str] = {
    "notify": "hub.notify:parse_section",
    "dispatch": "hub.dispatch.config:parse_section",
    "delivery": "hub.delivery.config:parse",
}

Fail = Callable[..., ConfigError]

HUB_KEYS = {"db", "host", "port", "max_body_bytes", "retention_days", "shed_after_ms"}
SHOP_KEYS = {"platform", "secret", "app_key", "old_secrets", "api_base", "message_url", "options"}
SHOP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def load(path: Path | str | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read and validate the config file; environment variables override `[hub]` keys."""
    env = dict(os.environ if env is None else env)
    path = Path(path or env.get(ENV_PREFIX + "CONFIG") or DEFAULT_CONFIG)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "config file not found (create one with `orderhook init`)", path=path
        ) from None
    return parse(text, path=path, env=env)


def parse(text: str, *, path: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise ConfigError(
            f"not valid TOML: {exc}", path=path, line=int(match.group(1)) if match else None
        ) from None

    def fail(message: str, *keys: str, nth: int = 0) -> ConfigError:
        return ConfigError(message, path=path, line=locate(text, *keys, nth=nth))

    hub = data.get("hub", {})
    if not isinstance(hub, dict):
        raise fail("[hub] must be a table", "hub")
    for key in hub:
        if key not in HUB_KEYS:
            raise fail(
                f"hub.{key}: unknown setting (known: {', '.join(sorted(HUB_KEYS))})", "hub", key
            )
    base = path.parent if path else Path.cwd()
    db_text = env.get(ENV_PREFIX + "DB") or hub.get("db", "orderhook.db")
    db = Path(db_text)
    if not db.is_absolute():
        db = (base / db) if not env.get(ENV_PREFIX + "DB") else db.absolute()

    def integer(key: str, default: int, low: int, high: int) -> int:
        override = env.get(ENV_PREFIX + key.upper())
        value: Any = override if override is not None else hub.get(key, default)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise fail(f"hub.{key}: {value!r} is not a whole number", "hub", key) from None
        if isinstance(value, bool) or not low <= number <= high:
            raise fail(f"hub.{key}: {value!r} is outside {low}..{high}", "hub", key)
        return number

    shops_raw = data.get("shops", {})
    if not isinstance(shops_raw, dict):
        raise fail("[shops] must be a table of shops", "shops")
    shops = {name: _shop(name, spec, env, fail) for name, spec in shops_raw.items()}
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name in ("hub", "shops"):
            continue
        target = SECTIONS.get(name)
        if target is None:
            known = ", ".join(sorted({"hub", "shops", *SECTIONS}))
            raise fail(f"[{name}]: unknown section (known: {known})", name)
        module, _, function = target.partition(":")
        parser = getattr(importlib.import_module(module), function)
        sections[name] = parser(value, fail)
    for name, target in SECTIONS.items():
        if name not in sections:
            module, _, function = target.partition(":")
            sections[name] = getattr(importlib.import_module(module), function)({}, fail)
    # a section may check itself against the others once all are read (dispatch's
    # channel names against [notify.channels]): `check_against(sections, fail)`
    for value in sections.values():
        check = getattr(value, "check_against", None)
        if callable(check):
            check(sections, fail)
    return Settings(
        db=db,
        host=env.get(ENV_PREFIX + "HOST") or str(hub.get("host", "127.0.0.1")),
        port=integer("port", 8600, 0, 65535),
        max_body_bytes=integer("max_body_bytes", 1 << 20, 1024, 64 << 20),
        retention_days=integer("retention_days", 30, 1, 3650),
        shed_after_ms=integer("shed_after_ms", 1000, 0, 600_000),
        shops=shops,
        source=path,
        raw=data,
        sections=sections,
    )


def _shop(name: str, spec: Any, env: dict[str, str], fail: Any) -> Shop:
    where = f"shops.{name}"
    if not isinstance(spec, dict):
        raise fail(f"{where}: must be a table", where)
    if not SHOP_NAME.match(name):
        raise fail(f"{where}: shop names are letters, digits, '-', '_' and '.'", where)
    for key in spec:
        if key not in SHOP_KEYS:
            raise fail(
                f"{where}.{key}: unknown setting (known: {', '.join(sorted(SHOP_KEYS))})",
                where,
                key,
            )
    platform = spec.get("platform")
    if not platform:
        raise fail(f"{where}: 'platform' is required", where)
    if connectors.get(platform) is None:
        raise fail(
            f"{where}.platform: {platform!r} is not a known platform "
            f"(known: {', '.join(connectors.names())})",
            where,
            "platform",
        )

    def secret(value: Any, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise fail(f"{where}.{key}: must be a non-empty string", where, key)
        if value.startswith("env:"):
            var = value[4:]
            if not env.get(var):
                raise fail(f"{where}.{key}: environment variable {var} is not set", where, key)
            return env[var]
        return value

    if "secret" not in spec:
        raise fail(f"{where}: 'secret' is required", where)
    old = spec.get("old_secrets", [])
    if not isinstance(old, list):
        raise fail(f"{where}.old_secrets: must be a list of strings", where, "old_secrets")
    shop = Shop(
        name=name,
        platform=platform,
        secret=secret(spec["secret"], "secret"),
        app_key=str(spec["app_key"]) if spec.get("app_key") is not None else None,
        old_secrets=tuple(secret(s, "old_secrets") for s in old),
        api_base=spec.get("api_base"),
        message_url=spec.get("message_url"),
        options=dict(spec.get("options", {})),
    )
    check = getattr(connectors.get(platform), "check_shop", None)
    if check is not None:
        try:
            check(shop)
        except ValueError as exc:
            raise fail(f"{where}: {exc}", where) from None
    return shop


def locate(text: str, *keys: str, nth: int = 0) -> int | None:
    """Line number (1-based) of a table header or key, for error messages.

    `locate(text, "shops.acme", "platform")` finds `[shops.acme]`, then `platform =`
    below it; `nth` picks the nth `[[table]]` of an array of tables (0 = the first).
    Good enough for the files people write by hand; None when not found.
    """
    lines = text.splitlines()
    start = 0
    table = keys[0] if keys else ""
    found_table = None
    for i, line in enumerate(lines):
        # a header may carry a trailing comment: `[[dispatch.rules]]  # first match wins`
        stripped = line.split("#", 1)[0].strip().replace('"', "").replace(" ", "")
        if stripped in (f"[{table}]", f"[[{table}]]"):
            if nth == 0:
                found_table = i
                break
            nth -= 1
    if found_table is None:
        return None
    start = found_table
    if len(keys) < 2:
        return start + 1
    key = keys[-1]
    for j in range(start + 1, len(lines)):
        stripped = lines[j].strip()
        if stripped.startswith("["):
            break
        if re.match(rf'^"?{re.escape(key)}"?\s*=', stripped):
            return j + 1
    return start + 1
