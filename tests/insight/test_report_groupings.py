"""The report's redemptions by tier (the member's tier when redeeming, from the tier history) and
by segment (the member's segments now) equal a plain join computed another way."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db.models import Count, Q

from loyalty.insight import Period
from loyalty.models import Segment, Tier, TierMembership
from redemptions import selectors
from redemptions.models import Redemption
from tests.helpers import d

pytestmark = pytest.mark.django_db

PERIOD = Period(start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 10))


def _joined(field: str) -> dict[str, int]:
    qs = Redemption.objects.filter(
        created_at__gte=PERIOD.start_at, created_at__lt=PERIOD.end_at, kind=Redemption.Kind.REDEMPTION
    )
    rows = qs.values(field).annotate(n=Count("id")).order_by("-n", field)
    return {(r[field] or "none"): r["n"] for r in rows}


def _tier_then(redemption: Redemption) -> str:
    interval = TierMembership.objects.filter(
        Q(valid_to__isnull=True) | Q(valid_to__gt=redemption.created_at),
        member_id=redemption.member_id,
        valid_from__lte=redemption.created_at,
    ).first()
    return interval.tier.code if interval else "none"


def test_by_tier_and_segment_equal_the_join_over_members(figures):
    ann, bob = figures["ann"], figures["bob"]
    gold = Tier.objects.order_by("-rank").first()
    TierMembership.objects.filter(member=ann).delete()
    TierMembership.objects.create(member=ann, tier=gold, valid_from=d(2026, 2, 1), valid_to=d(2026, 3, 3))
    TierMembership.objects.filter(member=bob).delete()
    vip = Segment.objects.create(code="vip", name="VIP")
    new = Segment.objects.create(code="new", name="New")
    vip.members.add(ann)
    new.members.add(ann)
    with time_machine.travel(d(2026, 3, 10, 12), tick=False):
        data = selectors.report_figures(PERIOD)["redemptions"]
    # Ann redeemed twice in the range (gold then, in vip and new), Bob once (no tier, no segment).
    in_range = Redemption.objects.filter(
        created_at__gte=PERIOD.start_at, created_at__lt=PERIOD.end_at, kind=Redemption.Kind.REDEMPTION
    )
    by_hand: dict[str, int] = {}
    for redemption in in_range:
        by_hand[_tier_then(redemption)] = by_hand.get(_tier_then(redemption), 0) + 1
    assert data["by_tier"] == {gold.code: 2, "none": 1} == by_hand
    assert data["by_segment"] == {"new": 2, "vip": 2, "none": 1} == _joined("member__segments__code")


def test_no_redemptions_in_range_gives_empty_groupings(figures):
    empty = Period(start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 5))
    data = selectors.report_figures(empty)["redemptions"]
    assert data["by_tier"] == {} and data["by_segment"] == {}


def test_order_values_split_purchases_by_an_applied_code(figures):
    from decimal import Decimal

    from promotions.selectors import order_values
    from tests.factories import CodeFactory, CodeRedemptionFactory, TransactionFactory

    ann = figures["ann"]
    with time_machine.travel(d(2026, 3, 5, 10), tick=False):
        for bill, amount in (("B-1", "40.00"), ("B-2", "60.00"), ("B-3", "10.00"), ("B-4", "11.00")):
            TransactionFactory(external_id=bill, amount=Decimal(amount), member=None)
        for bill in ("B-1", "B-2"):
            CodeRedemptionFactory(code=CodeFactory(), member=ann, order={"id": bill, "amount": "50.00"})
    with time_machine.travel(d(2026, 3, 12, 10), tick=False):
        TransactionFactory(external_id="B-5", amount=Decimal("99.00"), member=None)  # outside the range
    data = order_values(PERIOD)
    assert data["with_codes"] == {"orders": 2, "average": "50.00"}
    assert data["without_codes"] == {"orders": 2, "average": "10.50"}
    assert order_values(Period(start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 2)))["with_codes"] == {
        "orders": 0,
        "average": None,
    }


def test_a_campaigns_median_time_from_release_to_use(figures):
    """The median per campaign of (use - the code's release, or its creation without one)."""
    from promotions.selectors import report_campaigns
    from tests.factories import CampaignFactory, CodeFactory, CodeRedemptionFactory

    with time_machine.travel(d(2026, 3, 5, 8), tick=False):
        campaign = CampaignFactory()
        codes = [CodeFactory(campaign=campaign) for _ in range(3)]
    for code, hours in zip(codes, (1, 3, 10), strict=True):
        with time_machine.travel(d(2026, 3, 5, 8 + hours), tick=False):
            CodeRedemptionFactory(code=code, member=figures["ann"])
    (row,) = [r for r in report_campaigns(PERIOD) if r["id"] == campaign.pk]
    assert row["redemptions"] == 3 and row["used"] == 3 and row["codes"] == 3
    assert row["median_hours_to_redeem"] == 3.0
