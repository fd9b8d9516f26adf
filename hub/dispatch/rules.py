"""Routing: the first rule (in file order) whose conditions all hold picks the group.

Pure functions over an order's facts, so the live stage, `orderhook rules explain` and
`orderhook rules test` give the same answer for the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hub.dispatch.config import Condition, DispatchConfig, Rule


@dataclass(frozen=True)
class Route:
    group: str
    rule: str | None  # None: no rule matched, the default group
    priority: int


@dataclass(frozen=True)
class Step:
    """One rule looked at while routing: matched, or the first condition that failed."""

    rule: Rule
    failed: Condition | None
    actual: Any = None

    def describe(self) -> str:
        where = f" (line {self.rule.line})" if self.rule.line else ""
        if self.failed is None:
            return (
                f"rule {self.rule.name!r}{where}: MATCHED -> group {self.rule.group}, "
                f"priority {self.rule.priority}"
            )
        shown = "(none)" if self.actual in (None, []) else _show(self.actual)
        return (
            f"rule {self.rule.name!r}{where}: not matched: {self.failed.key} "
            f"{_wanted(self.failed)}, the order has {shown}"
        )


def order_facts(order: dict[str, Any]) -> dict[str, Any]:
    """The facts rules read: stored facts plus platform, shop and amount."""
    amount = order.get("amount")
    return {
        **(order.get("facts") or {}),
        "platform": order["platform"],
        "shop": order["shop"],
        "amount": None if amount is None else Decimal(str(amount)),
    }


def first_failure(rule: Rule, facts: dict[str, Any]) -> Condition | None:
    for condition in rule.conditions:
        if not condition.test(facts):
            return condition
    return None


def route(config: DispatchConfig, facts: dict[str, Any]) -> Route:
    for position in config.rule_index.candidates(facts):
        rule = config.rules[position]
        if first_failure(rule, facts) is None:
            return Route(rule.group, rule.name, rule.priority)
    return Route(config.default_group, None, 0)


def explain(config: DispatchConfig, facts: dict[str, Any]) -> tuple[list[Step], Route]:
    """Every rule up to the one that matched, each with why it did or did not."""
    steps = []
    for rule in config.rules:
        failed = first_failure(rule, facts)
        steps.append(Step(rule, failed, facts.get(failed.fact) if failed else None))
        if failed is None:
            return steps, Route(rule.group, rule.name, rule.priority)
    return steps, Route(config.default_group, None, 0)


def _wanted(condition: Condition) -> str:
    if condition.key == "amount":
        return condition.text.strip() if condition.text else "(amount)"
    return "in [" + ", ".join(sorted(condition.values)) + "]"


def _show(value: Any) -> str:
    return "[" + ", ".join(map(str, value)) + "]" if isinstance(value, list) else str(value)
