"""The `[dispatch]` section: groups, operators, routing rules. Validated at load; every
mistake names its file, line, rule and reason (see docs/dispatch.md for the format).

    [dispatch]
    default_group = "general"        # where an order goes when no rule matches
    route_on = ["paid"]              # order statuses that create a task

    [dispatch.groups.vip]
    escalate_after_minutes = 10      # unclaimed this long -> supervisor queue (default 30)
    notify = ["ops-wecom"]           # channel names from [notify.channels]
    high_value = 2000                # notify when a new order is at least this much
    backlog_alert = 20               # notify when this many tasks wait in the queue

    [dispatch.operators.ana]
    groups = ["vip", "general"]
    capacity = 5                     # open tasks at most

    [[dispatch.rules]]
    name = "big spenders"
    amount = "> 500"
    province = ["广东", "浙江"]
    group = "vip"
    priority = 5
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from hub.orders import RANK

Fail = Callable[..., Exception]

TOP_KEYS = {
    "default_group",
    "route_on",
    "groups",
    "operators",
    "rules",
    "notify",
    "escalation_scan_seconds",
    "reload_seconds",
}
GROUP_KEYS = {"escalate_after_minutes", "notify", "high_value", "backlog_alert"}
OPERATOR_KEYS = {"groups", "capacity", "status"}
STATUSES = ("working", "away", "off")
# rule condition keys -> the fact they test ("any of" for lists)
TEXT_FIELDS = {
    "platform": "platform",
    "shop": "shop",
    "province": "province",
    "city": "city",
    "warehouse": "warehouse",
}
SET_FIELDS = {"category": "categories", "sku": "skus", "buyer_tags": "buyer_tags", "flags": "flags"}
RULE_KEYS = {"name", "group", "priority", "amount", *TEXT_FIELDS, *SET_FIELDS}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
AMOUNT = re.compile(r"^\s*(>=|<=|>|<|==|=)?\s*(-?\d+(?:\.\d+)?)\s*$")
RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*\.\.\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Group:
    name: str
    escalate_after: timedelta = timedelta(minutes=30)
    notify: tuple[str, ...] = ()
    high_value: Decimal | None = None
    backlog_alert: int | None = None


@dataclass(frozen=True)
class Operator:
    name: str
    groups: tuple[str, ...]
    capacity: int
    status: str = "working"


@dataclass(frozen=True)
class Condition:
    """One test on an order's facts: `field` in `values`, or `amount` against bounds."""

    key: str  # as written in the rule
    fact: str  # the fact it reads
    values: frozenset[str] = frozenset()
    low: Decimal | None = None  # amount bounds; None = unbounded
    high: Decimal | None = None
    low_open: bool = False
    high_open: bool = False
    text: str = ""  # how the rule wrote it, for explanations

    def test(self, facts: dict[str, Any]) -> bool:
        actual = facts.get(self.fact)
        if self.key == "amount":
            if actual is None:
                return False
            amount = actual if isinstance(actual, Decimal) else Decimal(str(actual))
            if self.low is not None and (
                amount < self.low or (self.low_open and amount == self.low)
            ):
                return False
            return not (
                self.high is not None
                and (amount > self.high or (self.high_open and amount == self.high))
            )
        if isinstance(actual, list):
            return not self.values.isdisjoint(actual)
        return actual is not None and str(actual) in self.values


@dataclass(frozen=True)
class Rule:
    name: str
    group: str
    priority: int
    conditions: tuple[Condition, ...]
    line: int | None = None


@dataclass(frozen=True)
class RuleIndex:
    """Which rules can possibly match an order, found without testing them all.

    Each rule with a text or list condition is filed under the values of its most
    selective one (all conditions must hold, so an order lacking every one of those
    values cannot match it); rules with only an amount condition, or none, are always
    candidates. Routing then tests only the candidates, still in file order: with 200
    SKU rules an order is tested against a handful instead of all of them.
    """

    by_value: dict[tuple[str, str], tuple[int, ...]]
    always: tuple[int, ...]

    @classmethod
    def build(cls, rules: tuple[Rule, ...]) -> RuleIndex:
        by_value: dict[tuple[str, str], list[int]] = {}
        always = []
        for position, rule in enumerate(rules):
            keyed = [c for c in rule.conditions if c.key != "amount"]
            if not keyed:
                always.append(position)
                continue
            narrowest = min(keyed, key=lambda c: len(c.values))
            for value in narrowest.values:
                by_value.setdefault((narrowest.fact, value), []).append(position)
        return cls({k: tuple(v) for k, v in by_value.items()}, tuple(always))

    def candidates(self, facts: dict[str, Any]) -> list[int]:
        found = set(self.always)
        for fact, value in facts.items():
            for item in value if isinstance(value, list) else (value,):
                found.update(self.by_value.get((fact, str(item)), ()))
        return sorted(found)


@dataclass(frozen=True)
class DispatchConfig:
    default_group: str = "general"
    route_on: tuple[str, ...] = ("paid",)
    groups: dict[str, Group] = field(default_factory=lambda: {"general": Group("general")})
    operators: dict[str, Operator] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    notify: tuple[str, ...] = ()  # channels for groups that name none
    escalation_scan_seconds: float = 5.0
    reload_seconds: float = 1.0

    def group(self, name: str) -> Group:
        return self.groups.get(name) or Group(name)

    @cached_property
    def rule_index(self) -> RuleIndex:
        return RuleIndex.build(self.rules)

    def channels(self, group: str) -> tuple[str, ...]:
        return self.group(group).notify or self.notify

    def check_against(self, sections: dict[str, Any], fail: Fail) -> None:
        """Every channel named here must be one of [notify.channels] (when that section
        exists): a typo would otherwise only show up as a dead notification at 3 a.m."""
        notify = sections.get("notify")
        if notify is None or not hasattr(notify, "channels"):
            return
        known = set(notify.channels)
        named = [("dispatch.notify", "dispatch", self.notify)] + [
            (f"dispatch.groups.{g.name}.notify", f"dispatch.groups.{g.name}", g.notify)
            for g in self.groups.values()
        ]
        for where, table, channels in named:
            for channel in channels:
                if channel not in known:
                    listed = ", ".join(sorted(known)) or "none configured"
                    raise fail(
                        f"{where}: {channel!r} is not a channel of [notify.channels] "
                        f"(known: {listed})",
                        table,
                        "notify",
                    )


def parse_section(table: Any, fail: Fail) -> DispatchConfig:
    if not isinstance(table, dict):
        raise fail("[dispatch] must be a table", "dispatch")
    for key in table:
        if key not in TOP_KEYS:
            raise fail(
                f"dispatch.{key}: unknown setting (known: {', '.join(sorted(TOP_KEYS))})",
                "dispatch",
                key,
            )
    default_group = table.get("default_group", "general")
    if not isinstance(default_group, str) or not NAME.match(default_group):
        raise fail("dispatch.default_group: must be a group name", "dispatch", "default_group")
    route_on = _texts(table.get("route_on", ["paid"]), "dispatch.route_on", fail, "dispatch")
    for status in route_on:
        if status not in RANK:
            raise fail(
                f"dispatch.route_on: {status!r} is not an order status (known: {', '.join(RANK)})",
                "dispatch",
                "route_on",
            )
    groups = _groups(table.get("groups", {}), fail)
    groups.setdefault(default_group, Group(default_group))
    operators = _operators(table.get("operators", {}), groups, fail)
    rules = _rules(table.get("rules", []), groups, fail)
    return DispatchConfig(
        default_group=default_group,
        route_on=tuple(route_on),
        groups=groups,
        operators=operators,
        rules=tuple(rules),
        notify=tuple(
            _texts(table.get("notify", []), "dispatch.notify", fail, "dispatch", empty_ok=True)
        ),
        escalation_scan_seconds=_number(table, "escalation_scan_seconds", 5.0, fail),
        reload_seconds=_number(table, "reload_seconds", 1.0, fail),
    )


def _number(table: dict[str, Any], key: str, default: float, fail: Fail) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise fail(f"dispatch.{key}: must be a number of seconds in (0, 3600]", "dispatch", key)
    return float(value)


def _texts(
    value: Any, where: str, fail: Fail, *keys: str, nth: int = 0, empty_ok: bool = False
) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str | int) for v in values):
        raise fail(f"{where}: must be a text or a list of texts", *keys, nth=nth)
    if not values and not empty_ok:
        raise fail(f"{where}: an empty list matches nothing", *keys, nth=nth)
    return [str(v) for v in values]


def _groups(raw: Any, fail: Fail) -> dict[str, Group]:
    if not isinstance(raw, dict):
        raise fail("dispatch.groups: must be a table of groups", "dispatch.groups")
    groups = {}
    for name, spec in raw.items():
        where = f"dispatch.groups.{name}"
        if not NAME.match(name):
            raise fail(f"{where}: group names are letters, digits, '-', '_' and '.'", where)
        if not isinstance(spec, dict):
            raise fail(f"{where}: must be a table", where)
        for key in spec:
            if key not in GROUP_KEYS:
                known = ", ".join(sorted(GROUP_KEYS))
                raise fail(f"{where}.{key}: unknown setting (known: {known})", where, key)
        minutes = spec.get("escalate_after_minutes", 30)
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes <= 0:
            raise fail(
                f"{where}.escalate_after_minutes: must be a positive number",
                where,
                "escalate_after_minutes",
            )
        high_value = spec.get("high_value")
        if high_value is not None:
            try:
                high_value = Decimal(str(high_value))
            except InvalidOperation:
                raise fail(f"{where}.high_value: not an amount", where, "high_value") from None
        backlog = spec.get("backlog_alert")
        if backlog is not None and (
            isinstance(backlog, bool) or not isinstance(backlog, int) or backlog < 1
        ):
            raise fail(
                f"{where}.backlog_alert: must be a whole number >= 1", where, "backlog_alert"
            )
        notify = _texts(
            spec.get("notify", []), f"{where}.notify", fail, where, "notify", empty_ok=True
        )
        groups[name] = Group(
            name=name,
            escalate_after=timedelta(minutes=minutes),
            notify=tuple(notify),
            high_value=high_value,
            backlog_alert=backlog,
        )
    return groups


def _operators(raw: Any, groups: dict[str, Group], fail: Fail) -> dict[str, Operator]:
    if not isinstance(raw, dict):
        raise fail("dispatch.operators: must be a table of operators", "dispatch.operators")
    operators = {}
    for name, spec in raw.items():
        where = f"dispatch.operators.{name}"
        if not isinstance(spec, dict):
            raise fail(f"{where}: must be a table", where)
        for key in spec:
            if key not in OPERATOR_KEYS:
                known = ", ".join(sorted(OPERATOR_KEYS))
                raise fail(f"{where}.{key}: unknown setting (known: {known})", where, key)
        if "groups" not in spec:
            raise fail(f"{where}.groups: required (the groups this operator works in)", where)
        member_of = _texts(spec["groups"], f"{where}.groups", fail, where, "groups")
        for group in member_of:
            if group not in groups:
                raise fail(
                    f"{where}.groups: no group {group!r} (known: {', '.join(sorted(groups))})",
                    where,
                    "groups",
                )
        capacity = spec.get("capacity", 5)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise fail(f"{where}.capacity: must be a whole number >= 0", where, "capacity")
        status = spec.get("status", "working")
        if status not in STATUSES:
            raise fail(f"{where}.status: one of {', '.join(STATUSES)}", where, "status")
        operators[name] = Operator(name, tuple(member_of), capacity, status)
    return operators


def _rules(raw: Any, groups: dict[str, Group], fail: Fail) -> list[Rule]:
    if not isinstance(raw, list):
        raise fail("dispatch.rules: write rules as [[dispatch.rules]] tables", "dispatch")
    rules: list[Rule] = []
    seen: set[str] = set()
    head = "dispatch.rules"
    for index, spec in enumerate(raw):
        if not isinstance(spec, dict):
            raise fail(f"{head}[{index + 1}]: must be a table", head, nth=index)
        name = spec.get("name")
        label = f"{head}[{index + 1}]" + (f" {name!r}" if isinstance(name, str) else "")

        def bad(message: str, key: str | None = None, label: str = label, n: int = index) -> Any:
            return fail(f"rule {label}: {message}", head, *([key] if key else []), nth=n)

        if not isinstance(name, str) or not name.strip():
            raise bad("'name' is required (a text that explain can show)", "name")
        if name in seen:
            raise bad("another rule has this name; names must be unique", "name")
        seen.add(name)
        for key in spec:
            if key not in RULE_KEYS:
                raise bad(
                    f"unknown condition or setting {key!r} (known: {', '.join(sorted(RULE_KEYS))})",
                    key,
                )
        group = spec.get("group")
        if not isinstance(group, str):
            raise bad("'group' is required (where matching orders go)", "group")
        if group not in groups:
            raise bad(f"no group {group!r} (known: {', '.join(sorted(groups))})", "group")
        priority = spec.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise bad("'priority' must be a whole number (higher is handed out first)", "priority")
        conditions = []
        for key, value in spec.items():
            if key in ("name", "group", "priority"):
                continue
            if key == "amount":
                conditions.append(_amount(value, bad))
                continue
            fact = TEXT_FIELDS.get(key) or SET_FIELDS[key]
            try:
                values = _texts(value, key, _raise_value)
            except ValueError as exc:
                raise bad(str(exc), key) from None
            conditions.append(Condition(key, fact, frozenset(values), text=_show(value)))
        line = fail("", head, nth=index)
        rules.append(Rule(name, group, priority, tuple(conditions), getattr(line, "line", None)))
    return rules


def _raise_value(message: str, *_keys: Any, **_kw: Any) -> Exception:
    return ValueError(message)


def _show(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _amount(value: Any, bad: Callable[..., Exception]) -> Condition:
    text = (
        str(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else ""
    )
    hint = "use '> 500', '>= 500', '< 100', '== 99.9' or '100..500'"
    if match := RANGE.match(text):
        low, high = Decimal(match.group(1)), Decimal(match.group(2))
        if low > high:
            raise bad(f"amount {text!r}: the range is empty ({hint})", "amount")
        return Condition("amount", "amount", low=low, high=high, text=text)
    match = AMOUNT.match(text)
    if not match:
        raise bad(f"amount {text!r} is not a comparison ({hint})", "amount")
    op, number = match.group(1) or "==", Decimal(match.group(2))
    if op in (">", ">="):
        return Condition("amount", "amount", low=number, low_open=op == ">", text=text)
    if op in ("<", "<="):
        return Condition("amount", "amount", high=number, high_open=op == "<", text=text)
    return Condition("amount", "amount", low=number, high=number, text=text)
