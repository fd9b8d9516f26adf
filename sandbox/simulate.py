"""Platform-faithful pushes on demand: one event, or a scenario file for load and
rehearsal (a burst of orders, redeliveries, out-of-order events, a signature-algorithm
change).

Push platforms are every connector with a `simulate()` method; channel platforms are
the `command`s of the modules in `sandbox.fakes`, which serve the platform's message
channel locally. Both are found at run time: adding a platform adds its subcommand.

Scenario file (TOML or JSON):

    platform = "standard"
    shop = "acme"
    secret = "whsec_..."          # optional when the config has the shop
    [[steps]]
    type = "burst"                # N orders, each through `events`, sent concurrently
    orders = 200
    events = ["created", "paid"]
    concurrency = 20
    [[steps]]
    type = "duplicates"           # redeliver N messages already sent, byte for byte
    count = 20
    [[steps]]
    type = "out_of_order"         # each order's events sent last first
    orders = 5
    events = ["created", "paid", "shipped"]
    [[steps]]
    type = "algorithm_change"     # signed with another algorithm the platform uses
    variant = "secret-text-key"
    orders = 3
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
import random
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import httpx

import connectors
from connectors.base import Outbound
from hub.model import Kind
from hub.settings import Shop
from sandbox.sending import bare_client, connector_method

STEP_TYPES = ("burst", "duplicates", "out_of_order", "algorithm_change")


def simulators() -> list[str]:
    """Platforms whose connector can produce a signed push."""
    return [n for n in connectors.names() if hasattr(connectors.get(n), "simulate")]


def fake_commands(package: str = "sandbox.fakes") -> dict[str, click.Command]:
    """`command` of every module in `package` (channel fakes); {} when there is none."""
    try:
        pkg = importlib.import_module(package)
    except ModuleNotFoundError:
        return {}
    found: dict[str, click.Command] = {}
    for info in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
        if info.name.startswith("_"):
            continue
        command = getattr(importlib.import_module(f"{package}.{info.name}"), "command", None)
        if isinstance(command, click.Command):  # platform_api.py -> platform-api, as click names
            found[info.name.replace("_", "-")] = command
    return found


def one_push(
    shop: Shop,
    kind: Kind,
    order_id: str,
    *,
    amount: Decimal | None = None,
    message_id: str | None = None,
) -> Outbound:
    simulate = connector_method(shop.platform, "simulate")
    result: Outbound = simulate(shop, kind, order_id, amount=amount, message_id=message_id)
    return result


# --- scenarios -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    type: str
    orders: int = 1
    events: tuple[Kind, ...] = (Kind.CREATED, Kind.PAID)
    count: int = 1
    concurrency: int = 10
    variant: str | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    platform: str
    shop: str
    secret: str | None
    steps: tuple[Step, ...]


@dataclass(slots=True)
class StepResult:
    step: Step
    statuses: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {"type": self.step.type, "sent": sum(self.statuses.values()), **self.statuses}


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file; ValueError says what is wrong and where."""
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix != ".json" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        what = "JSON" if path.suffix == ".json" else "TOML"
        raise ValueError(f"{path}: not valid {what}: {exc}") from None
    if not isinstance(data, dict) or not data.get("platform") or not data.get("shop"):
        raise ValueError(f"{path}: a scenario needs 'platform' and 'shop'")
    steps = []
    for n, raw in enumerate(data.get("steps") or [], 1):
        where = f"{path}: step {n}"
        kind = raw.get("type")
        if kind not in STEP_TYPES:
            raise ValueError(f"{where}: type must be one of {', '.join(STEP_TYPES)}")
        unknown = set(raw) - {"type", "orders", "events", "count", "concurrency", "variant"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        try:
            events = tuple(Kind(e) for e in raw.get("events", ["created", "paid"]))
        except ValueError:
            known = ", ".join(k.value for k in Kind)
            raise ValueError(f"{where}: events are some of {known}") from None
        if kind == "algorithm_change" and not raw.get("variant"):
            raise ValueError(f"{where}: algorithm_change needs 'variant'")
        numbers = {k: raw.get(k, d) for k, d in (("orders", 1), ("count", 1), ("concurrency", 10))}
        if any(not isinstance(v, int) or v < 1 for v in numbers.values()):
            raise ValueError(f"{where}: orders, count and concurrency are whole numbers >= 1")
        steps.append(Step(kind, events=events, variant=raw.get("variant"), **numbers))
    if not steps:
        raise ValueError(f"{path}: no [[steps]]")
    return Scenario(str(data["platform"]), str(data["shop"]), data.get("secret"), tuple(steps))


def _messages(step: Step, shop: Shop, sent: list[Outbound], rng: random.Random) -> list[Outbound]:
    def order_id() -> str:
        return str(rng.randrange(10**18, 10**19))  # past 2^53, as platforms' ids are

    def amount() -> Decimal:
        return Decimal(rng.randrange(100, 99900)) / 100

    if step.type == "duplicates":
        if not sent:
            raise ValueError("a duplicates step needs an earlier step whose messages it resends")
        return [sent[rng.randrange(len(sent))] for _ in range(step.count)]
    out: list[Outbound] = []
    for _ in range(step.orders):
        oid, total = order_id(), amount()
        flow = [one_push(shop, kind, oid, amount=total) for kind in step.events]
        if step.type == "out_of_order":
            flow.reverse()
        if step.type == "algorithm_change":
            variants = connector_method(shop.platform, "variants")
            signed = [variants(shop, msg) for msg in flow]
            if step.variant not in signed[0]:
                raise ValueError(
                    f"{shop.platform} has no variant {step.variant!r} "
                    f"(known: {', '.join(signed[0])})"
                )
            flow = [s[step.variant] for s in signed]
        out.extend(flow)
    return out


async def run_scenario(
    scenario: Scenario,
    shop: Shop,
    url: str,
    *,
    timeout: float = 10.0,
    seed: int | None = None,
    on_sent: Callable[[], None] = lambda: None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[StepResult]:
    """Run the steps in order; within a step, messages go out `concurrency` at a time
    (out-of-order steps one by one, so the order on the wire is the one intended)."""
    rng = random.Random(seed)
    sent: list[Outbound] = []
    results = []
    async with bare_client(timeout=timeout, transport=transport) as client:
        for step in scenario.steps:
            result = StepResult(step)
            batch = _messages(step, shop, sent, rng)
            gate = asyncio.Semaphore(1 if step.type == "out_of_order" else step.concurrency)

            async def send(
                msg: Outbound, result: StepResult = result, gate: asyncio.Semaphore = gate
            ) -> None:
                async with gate:
                    try:
                        response = await client.post(
                            url + msg.tail, headers=msg.headers, content=msg.body
                        )
                        result.statuses[str(response.status_code)] += 1
                    except httpx.HTTPError as exc:
                        result.statuses[type(exc).__name__] += 1
                    on_sent()

            await asyncio.gather(*(send(m) for m in batch))
            sent.extend(m for m in batch if step.type != "duplicates")
            results.append(result)
    return results


def scenario_size(scenario: Scenario) -> int:
    return sum(
        s.count if s.type == "duplicates" else s.orders * len(s.events) for s in scenario.steps
    )
