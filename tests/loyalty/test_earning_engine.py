"""The earning engine is pure: no database."""

import datetime as dt
from decimal import Decimal

from loyalty.earning import PurchaseData, RuleData, RuleSetData, compute_earning, share_of_points

AT = dt.datetime(2023, 5, 20, 12, tzinfo=dt.UTC)


def one_rule_set(*rules):
    return RuleSetData(id=7, name="Set 2", version=3, rules=tuple(rules))


def test_percent_by_tier_rounds_down_per_rule():
    rule = RuleData(
        id=1,
        name="tier %",
        metric="points",
        action="percent_of_amount",
        percent_by_tier={"GOLD": 20, "SILVER": 15, "BRONZE": 10},
    )
    purchase = PurchaseData(amount=Decimal("99.99"), occurred_at=AT)
    assert compute_earning(purchase, "SILVER", one_rule_set(rule))["points"] == 14  # 14.9985 -> 14
    assert compute_earning(purchase, "GOLD", one_rule_set(rule))["points"] == 19  # 19.998 -> 19
    assert compute_earning(purchase, None, one_rule_set(rule))["points"] == 0


def test_per_amount_counts_whole_units_and_fixed_is_per_purchase():
    per = RuleData(id=1, name="1 per 10", metric="points", action="per_amount", points=1, unit_amount=Decimal(10))
    fixed = RuleData(id=2, name="visit", metric="status", action="fixed", points=98)
    result = compute_earning(PurchaseData(amount=Decimal("99.99"), occurred_at=AT), "BRONZE", one_rule_set(per, fixed))
    assert result["points_by_metric"] == {"points": 9, "status": 98}
    assert result["points"] == 107
    assert result["rule_set"] == {"id": 7, "name": "Set 2", "version": 3}
    assert [r["rule"] for r in result["rules"]] == ["1 per 10", "visit"]


def test_conditions_skip_rules_and_say_why():
    rule = RuleData(
        id=1,
        name="online gold",
        metric="points",
        action="fixed",
        points=50,
        min_amount=Decimal(20),
        channels=("online",),
        stores=(),
        tiers=("GOLD",),
    )
    ok = PurchaseData(amount=Decimal(25), occurred_at=AT, channel="online")
    assert compute_earning(ok, "GOLD", one_rule_set(rule))["points"] == 50
    cases = {
        "the amount is below 20": (PurchaseData(amount=Decimal(19), occurred_at=AT, channel="online"), "GOLD"),
        "only for channel online; this purchase: pos": (
            PurchaseData(amount=Decimal(25), occurred_at=AT, channel="pos"),
            "GOLD",
        ),
        "only for tier GOLD; the member's tier: SILVER": (ok, "SILVER"),
    }
    for why, (purchase, tier) in cases.items():
        result = compute_earning(purchase, tier, one_rule_set(rule))
        assert result["points"] == 0
        assert result["skipped"] == [{"rule": "online gold", "rule_id": 1, "why": why}]


def test_no_rule_set_earns_nothing_and_says_so():
    result = compute_earning(PurchaseData(amount=Decimal(10), occurred_at=AT), "GOLD", None)
    assert result["points"] == 0 and "no published rule set" in result["note"]


def test_share_of_points_is_cumulative_so_partial_returns_add_up_to_the_whole():
    earned, amount = 15, Decimal("100.00")
    taken = 0
    for returned_total in (Decimal("33.33"), Decimal("66.66"), Decimal("100.00")):
        step = share_of_points(earned, amount, returned_total) - taken
        assert step >= 0
        taken += step
    assert taken == 15
