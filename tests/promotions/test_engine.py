"""The validation and stacking evaluator is pure: no database."""

import datetime as dt
from decimal import Decimal

import pytest

from promotions.engine import CampaignView, CodeView, MemberView, OrderView, evaluate

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
ORDER = OrderView(amount=Decimal("100.00"), channel="online", id="o-1")
MEMBER = MemberView(id=1, tier="SILVER", segments=frozenset({"vip"}))


def campaign(id=1, **kw):
    base = dict(kind="percent_discount", value=Decimal(10), status="active")
    return CampaignView(id=id, **{**base, **kw})


def code(name, camp=None, **kw):
    return CodeView(
        id=hash(name) % 10_000,
        code=name,
        status=kw.pop("status", "active"),
        uses=kw.pop("uses", 0),
        max_uses=kw.pop("max_uses", 1),
        campaign=camp or campaign(),
        **kw,
    )


def run(codes, *views, member=MEMBER, order=ORDER, now=NOW):
    found = {v.code: v for v in views}
    return evaluate(codes, found, member, order, now)


def reasons(evaluation):
    return [r.reason for r in evaluation.results]


def test_each_reason():
    c = campaign()
    cases = {
        None: code("OK", c),
        "code_unknown": None,
        "code_void": code("V", c, status="void"),
        "code_expired": code("E", c, valid_until=NOW),
        "code_not_yet_valid": code("N", c, valid_from=NOW + dt.timedelta(seconds=1)),
        "code_already_used": code("U", c, uses=1),
        "campaign_inactive": code("P", campaign(status="paused")),
        "not_eligible": code("T", campaign(eligible_tiers=frozenset({"GOLD"}))),
    }
    for reason, view in cases.items():
        name = view.code if view else "NOPE"
        result = run([name], *([view] if view else []))
        assert reasons(result) == [reason], reason


def test_windows_are_exact_at_their_boundaries():
    c = campaign(starts_at=NOW, ends_at=NOW + dt.timedelta(days=1))
    view = code("W", c, valid_from=NOW)
    assert reasons(run(["W"], view, now=NOW)) == [None]  # starts inclusive
    assert reasons(run(["W"], view, now=NOW - dt.timedelta(microseconds=1))) == ["code_not_yet_valid"]
    assert reasons(run(["W"], view, now=NOW + dt.timedelta(days=1))) == ["code_expired"]  # ends exclusive
    assert reasons(run(["W"], view, now=NOW + dt.timedelta(days=1, microseconds=-1))) == [None]


@pytest.mark.parametrize(
    "kw,member,order,expected",
    [
        ({"eligible_tiers": frozenset({"SILVER"})}, MEMBER, ORDER, None),
        ({"eligible_tiers": frozenset({"GOLD"})}, MEMBER, ORDER, "not_eligible"),
        ({"eligible_segments": frozenset({"vip"})}, MEMBER, ORDER, None),
        ({"eligible_segments": frozenset({"staff"})}, MEMBER, ORDER, "not_eligible"),
        ({"eligible_segments": frozenset({"vip"})}, None, ORDER, "not_eligible"),
        ({"min_order_amount": Decimal("100.00")}, MEMBER, ORDER, None),
        ({"min_order_amount": Decimal("100.01")}, MEMBER, ORDER, "not_eligible"),
        ({"channels": ("pos",)}, MEMBER, ORDER, "not_eligible"),
        ({"channels": ("online", "pos")}, MEMBER, ORDER, None),
        ({"kind": "bonus_points", "value": Decimal(50)}, None, ORDER, "not_eligible"),
    ],
)
def test_eligibility(kw, member, order, expected):
    assert reasons(run(["C"], code("C", campaign(**kw)), member=member, order=order)) == [expected]


def test_assigned_codes_only_work_for_their_member():
    view = code("A", assigned_member_id=2)
    assert reasons(run(["A"], view)) == ["not_eligible"]
    assert reasons(run(["A"], view, member=MemberView(id=2))) == [None]


def test_per_member_limit_counts_earlier_uses_and_the_current_stack():
    c = campaign(per_member_limit=2, stacking="stackable", max_codes_per_order=3)
    a, b = code("A", c), code("B", c)
    used_once = MemberView(id=1, usage={1: 1})
    assert reasons(run(["A", "B"], a, b, member=used_once)) == [None, "limit_reached"]
    assert reasons(run(["A"], a, member=MemberView(id=1, usage={1: 2}))) == ["limit_reached"]


def test_budgets_count_uses_and_money():
    assert reasons(run(["A"], code("A", campaign(max_redemptions=5, redemptions_count=5)))) == ["budget_exhausted"]
    money = campaign(
        kind="fixed_discount", value=Decimal(15), max_discount_total=Decimal(100), discount_total=Decimal(90)
    )
    assert reasons(run(["A"], code("A", money))) == ["budget_exhausted"]
    assert reasons(
        run(
            ["A"],
            code(
                "A",
                campaign(
                    kind="fixed_discount",
                    value=Decimal(10),
                    max_discount_total=Decimal(100),
                    discount_total=Decimal(90),
                ),
            ),
        )
    ) == [None]


def test_exclusive_codes_refuse_company_either_way():
    excl = code("X", campaign(id=1))
    stack = code("S", campaign(id=2, stacking="stackable", stack_group="g", max_codes_per_order=3))
    assert reasons(run(["X", "S"], excl, stack)) == [None, "stacking_not_allowed"]
    assert reasons(run(["S", "X"], excl, stack)) == [None, "stacking_not_allowed"]


def test_stackable_codes_combine_up_to_the_smallest_max_within_one_group():
    g3 = [
        code(f"G{i}", campaign(id=10 + i, stacking="stackable", stack_group="g", max_codes_per_order=3))
        for i in range(4)
    ]
    assert reasons(run([v.code for v in g3], *g3)) == [None, None, None, "stacking_not_allowed"]
    tight = code("T", campaign(id=20, stacking="stackable", stack_group="g", max_codes_per_order=2))
    assert reasons(run(["G0", "G1", "T"], *g3, tight)) == [None, None, "stacking_not_allowed"]
    other_group = code("O", campaign(id=30, stacking="stackable", stack_group="h", max_codes_per_order=5))
    assert reasons(run(["G0", "O"], *g3, other_group)) == [None, "stacking_not_allowed"]


def test_discounts_apply_in_order_on_what_is_left_and_never_exceed_the_order():
    pct = code("P", campaign(id=1, stacking="stackable", stack_group="g", max_codes_per_order=3, value=Decimal("12.5")))
    fixed = code(
        "F",
        campaign(
            id=2,
            kind="fixed_discount",
            value=Decimal(200),
            stacking="stackable",
            stack_group="g",
            max_codes_per_order=3,
        ),
    )
    result = run(["P", "F"], pct, fixed)
    assert [r.discount for r in result.results] == [Decimal("12.50"), Decimal("87.50")]
    assert result.discount_total == Decimal("100.00")


def test_the_same_code_twice_and_unknown_codes_stay_in_the_answer():
    view = code("A", max_uses=5)
    result = run(["A", "A", "ZZZ"], view)
    assert reasons(result) == [None, "stacking_not_allowed", "code_unknown"]
    assert not result.all_valid and [r.code for r in result.applicable] == ["A"]
