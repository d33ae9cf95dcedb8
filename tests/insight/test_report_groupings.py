"""The report's redemptions by tier and by segment, read from the range's redemptions only, equal
the plain join over the member table (what the report computed before issue 17's speed-up)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db.models import Count

from loyalty.insight import Period
from loyalty.models import Segment, Tier
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


def test_by_tier_and_segment_equal_the_join_over_members(figures):
    ann, bob = figures["ann"], figures["bob"]
    gold = Tier.objects.order_by("-rank").first()
    type(ann).objects.filter(pk=ann.pk).update(tier=gold)
    type(bob).objects.filter(pk=bob.pk).update(tier=None)
    vip = Segment.objects.create(code="vip", name="VIP")
    new = Segment.objects.create(code="new", name="New")
    vip.members.add(ann)
    new.members.add(ann)
    with time_machine.travel(d(2026, 3, 10, 12), tick=False):
        data = selectors.report_figures(PERIOD)["redemptions"]
    # Ann redeemed twice in the range (gold, in vip and new), Bob once (no tier, no segment).
    assert data["by_tier"] == {gold.code: 2, "none": 1} == _joined("member__tier__code")
    assert data["by_segment"] == {"new": 2, "vip": 2, "none": 1} == _joined("member__segments__code")


def test_no_redemptions_in_range_gives_empty_groupings(figures):
    empty = Period(start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 5))
    data = selectors.report_figures(empty)["redemptions"]
    assert data["by_tier"] == {} and data["by_segment"] == {}
