"""The earning engine: a pure function over plain data, testable without a database.

Given a purchase, the member's tier at the purchase date and the rule set in force at the purchase
date, it returns how many points each rule gives and why. Retro processing is exact by
construction because callers pass point-in-time inputs.

Rounding (stated, and tested): each rule's points are rounded **down** to a whole point, per rule,
before summing. ``per_amount`` counts whole units only (99.99 at 10 per unit is 9 units).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any


@dataclass(frozen=True)
class PurchaseData:
    amount: Decimal
    occurred_at: dt.datetime
    channel: str = ""
    store: str = ""
    currency: str = ""


@dataclass(frozen=True)
class RuleData:
    id: int | None
    name: str
    metric: str
    action: str
    points: int | None = None
    unit_amount: Decimal | None = None
    percent_by_tier: dict[str, Any] = field(default_factory=dict)
    min_amount: Decimal | None = None
    channels: tuple[str, ...] = ()
    stores: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleSetData:
    id: int | None
    name: str
    version: int
    rules: tuple[RuleData, ...]


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def _skip_reason(rule: RuleData, purchase: PurchaseData, tier: str | None) -> str | None:
    # Read by people (the retro preview, the rule set preview): plain words, not Python lists.
    if rule.min_amount is not None and purchase.amount < rule.min_amount:
        return f"the amount is below {rule.min_amount}"
    if rule.channels and purchase.channel not in rule.channels:
        return f"only for channel {_either(rule.channels)}; this purchase: {purchase.channel or 'no channel'}"
    if rule.stores and purchase.store not in rule.stores:
        return f"only for store {_either(rule.stores)}; this purchase: {purchase.store or 'no store'}"
    if rule.tiers and tier not in rule.tiers:
        return f"only for tier {_either(rule.tiers)}; the member's tier: {tier or 'none'}"
    return None


def _either(values) -> str:
    values = list(values)
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + f" or {values[-1]}"


def _apply(rule: RuleData, purchase: PurchaseData, tier: str | None) -> dict[str, Any]:
    base = purchase.amount
    if rule.action == "fixed":
        points = int(rule.points or 0)
        return {"base": "1 purchase", "multiplier": str(points), "points": points}
    if rule.action == "per_amount":
        unit = Decimal(rule.unit_amount or 0)
        if unit <= 0:
            return {"base": str(base), "multiplier": "0", "points": 0}
        units = _floor(base / unit)
        points = units * int(rule.points or 0)
        return {"base": str(base), "units": units, "multiplier": f"{rule.points} per {unit}", "points": points}
    if rule.action == "percent_of_amount":
        percent = Decimal(str(rule.percent_by_tier.get(tier or "", 0)))
        points = _floor(base * percent / Decimal(100))
        return {"base": str(base), "multiplier": f"{percent}%", "points": points}
    raise ValueError(f"unknown action {rule.action!r}")


def compute_earning(purchase: PurchaseData, tier: str | None, rule_set: RuleSetData | None) -> dict[str, Any]:
    """Points per metric and a breakdown that explains them (stored on the ledger entry)."""
    breakdown: dict[str, Any] = {
        "rule_set": None,
        "tier": tier,
        "occurred_at": purchase.occurred_at.isoformat(),
        "amount": str(purchase.amount),
        "rules": [],
        "skipped": [],
        "points_by_metric": {},
        "points": 0,
        "rounding": "each rule rounded down to whole points",
    }
    if rule_set is None:
        breakdown["note"] = "no published rule set was in force at the purchase date"
        return breakdown
    breakdown["rule_set"] = {"id": rule_set.id, "name": rule_set.name, "version": rule_set.version}
    totals: dict[str, int] = {}
    for rule in rule_set.rules:
        reason = _skip_reason(rule, purchase, tier)
        if reason:
            breakdown["skipped"].append({"rule": rule.name, "rule_id": rule.id, "why": reason})
            continue
        result = _apply(rule, purchase, tier)
        if result["points"] <= 0:
            breakdown["skipped"].append({"rule": rule.name, "rule_id": rule.id, "why": "gives no points"})
            continue
        breakdown["rules"].append(
            {"rule": rule.name, "rule_id": rule.id, "metric": rule.metric, "action": rule.action, **result}
        )
        totals[rule.metric] = totals.get(rule.metric, 0) + result["points"]
    breakdown["points_by_metric"] = totals
    breakdown["points"] = sum(totals.values())
    return breakdown


def share_of_points(earned: int, amount: Decimal, returned_total: Decimal) -> int:
    """Points that a cumulative return of ``returned_total`` out of ``amount`` takes back (rounded
    down, so partial returns never take more than their share and a full return takes exactly all)."""
    if returned_total >= amount:
        return earned
    return _floor(Decimal(earned) * returned_total / amount)
