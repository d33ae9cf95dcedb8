"""The report from the daily rollup equals the report computed live, figure for figure (issue 17).

The fixture spans several days (tests/insight/conftest.py, plus code uses, an expiry and tier
changes); the report is computed with the closed days read from ``DailyFigure`` and again fully
live (``rollup.computed_live``), before and after late changes: a rollback of an old
redemption, a rollback of an old request approved now, a tier change, a segment change, a
backdated legacy import and an imported tier interval.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from loyalty import services as loyalty
from loyalty.insight import Period, report, rollup
from loyalty.models import DailyFigure, InsightDay, Member, Segment, TierMembership
from loyalty.services import insight as service
from redemptions import services as redemptions
from redemptions.models import Redemption, Rollback
from tests.factories import CodeFactory, CodeRedemptionFactory
from tests.helpers import d

pytestmark = pytest.mark.django_db

PERIOD = Period(start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 25))
NOW = d(2026, 3, 25, 12)  # March 1st to 24th are closed, the 25th is open (live)


def _both(period: Period = PERIOD) -> tuple[dict, dict]:
    stored = report.build_summary(period)
    with rollup.computed_live():
        live = report.build_summary(period)
    stored.pop("generated_at"), live.pop("generated_at")
    return stored, live


@pytest.fixture
def history(figures, metric, support_user, admin_user, tiers):
    """The shared fixture, plus: code uses on March 5th, 9th (late evening) and 25th; the miles expiring (March
    21st); Ann gold from March 1st (tier history) and Bob silver from March 8th; a redemption today."""
    ann, bob = figures["ann"], figures["bob"]
    TierMembership.objects.filter(member=ann).delete()
    TierMembership.objects.create(member=ann, tier=tiers["GOLD"], valid_from=d(2026, 2, 1))
    Member.objects.filter(pk=ann.pk).update(tier=tiers["GOLD"])
    badge = Redemption.objects.filter(member=bob).first().reward
    for when in (d(2026, 3, 5, 10), d(2026, 3, 9, 23, 30), d(2026, 3, 25, 9)):
        with time_machine.travel(when, tick=False):
            CodeRedemptionFactory(code=CodeFactory(), member=ann)
    with time_machine.travel(d(2026, 3, 8, 10), tick=False):
        loyalty.change_tier(member=bob, tier=tiers["SILVER"], actor=admin_user, reason="promoted")
    with time_machine.travel(d(2026, 3, 9, 9), tick=False):
        redemptions.redeem_reward(member=bob, reward=badge, actor=support_user)
    with time_machine.travel(d(2026, 3, 22, 3), tick=False):
        assert loyalty.expire_points() >= 1
    with time_machine.travel(d(2026, 3, 25, 8), tick=False):
        redemptions.redeem_reward(member=ann, reward=badge, actor=support_user)
    return {**figures, "badge": badge}


def test_the_stored_days_give_the_live_figures(history):
    with time_machine.travel(NOW, tick=False):
        stored, live = _both()
    assert stored == live
    # Every closed day is stored (even those with nothing in them), the open day is not.
    assert InsightDay.objects.count() == 24
    assert not InsightDay.objects.filter(day=dt.date(2026, 3, 25)).exists()
    # The fixture's figures, so the equality above is not between two empty reports.
    assert stored["redemptions"]["count"] == 6
    assert stored["redemptions"]["by_tier"] == {"GOLD": 3, "SILVER": 2, "BRONZE": 1}
    assert stored["awards"]["count"] == 1
    assert stored["breakage"]["miles"] == {"issued": 300, "expired": 300, "rate": 1.0}
    assert sum(row["code_redemptions"] for row in stored["daily"]) == 3
    days = {row["date"]: row for row in stored["daily"]}
    assert days[dt.date(2026, 3, 25)]["redemptions"] == 1 and days[dt.date(2026, 3, 25)]["code_redemptions"] == 1


def test_the_report_reads_the_stored_days(history):
    """A stored figure is what the report shows: the closed days are not computed again."""
    with time_machine.travel(NOW, tick=False):
        report.build_summary(PERIOD)
        DailyFigure.objects.filter(key="redemptions.count", day=dt.date(2026, 3, 2)).update(value=40)
        stored, live = _both()
    assert stored["redemptions"]["count"] == live["redemptions"]["count"] + 38


def test_late_changes_keep_the_stored_days_equal_to_live(history, support_user, approver_user, admin_user, tiers):
    ann, bob, badge = history["ann"], history["bob"], history["badge"]
    with time_machine.travel(NOW, tick=False):
        before, _ = _both()
    with time_machine.travel(d(2026, 3, 26, 10), tick=False):
        # A rollback of a closed day's redemption counts on its own day (the 26th).
        old = Redemption.objects.get(member=bob, created_at=d(2026, 3, 9, 9))
        redemptions.rollback_redemption(redemption=old, reason="customer_request", actor=support_user)
        # The March 4th request for a second person, approved now: rollbacks are by request day, live.
        waiting = Rollback.objects.get(status=Rollback.Status.PENDING_APPROVAL)
        redemptions.approve_rollback(rollback=waiting, actor=approver_user)
        # Tiers now do not move the closed days' redemptions (the tier at the time counts).
        loyalty.change_tier(member=ann, tier=tiers["BRONZE"], actor=admin_user, reason="downgrade")
        Segment.objects.create(code="vip", name="VIP").members.add(ann)
        # A legacy import dated March 6th reopens that day.
        redemptions.import_legacy_redemption(
            member=bob,
            reward=badge,
            quantity=1,
            points_spent=70,
            status="completed",
            created_at=d(2026, 3, 6, 12),
            external_ref="L-1",
            actor=admin_user,
        )
    assert not InsightDay.objects.filter(day=dt.date(2026, 3, 6)).exists()
    with time_machine.travel(d(2026, 3, 26, 12), tick=False):
        after, live = _both()
    assert after == live
    assert after["redemptions"]["count"] == before["redemptions"]["count"] + 1
    assert after["redemptions"]["points"]["points"] == before["redemptions"]["points"]["points"] + 70
    assert after["redemptions"]["by_tier"]["GOLD"] == before["redemptions"]["by_tier"]["GOLD"]
    assert after["redemptions"]["by_segment"] == {"vip": 3, "none": 4}
    assert after["rollbacks"]["count"] == before["rollbacks"]["count"] + 1  # the approved one; the 26th is out


def test_an_imported_tier_interval_reopens_the_days_it_covers(history, admin_user, tiers):
    ann = history["ann"]
    with time_machine.travel(NOW, tick=False):
        report.build_summary(PERIOD)
        TierMembership.objects.filter(member=ann).update(valid_from=d(2026, 3, 10))
        loyalty.record_tier_interval(
            member=ann,
            tier=tiers["SILVER"],
            valid_from=d(2026, 2, 1),
            valid_to=d(2026, 3, 10),
            actor=admin_user,
            reason="legacy history",
        )
        assert not InsightDay.objects.filter(day__gte=dt.date(2026, 2, 1), day__lte=dt.date(2026, 3, 10)).exists()
        assert InsightDay.objects.filter(day=dt.date(2026, 3, 11)).exists()
        stored, live = _both()
    assert stored == live
    assert stored["redemptions"]["by_tier"]["SILVER"] == 4  # Ann's two of March 2nd, Bob's two


def test_a_day_closes_only_after_the_grace_period(history):
    with time_machine.travel(d(2026, 3, 25, 0, 5), tick=False):
        assert rollup.last_closed_day() == dt.date(2026, 3, 23)
        closed, open_ = rollup.split(PERIOD)
        assert (closed.end, open_.start) == (dt.date(2026, 3, 23), dt.date(2026, 3, 24))
        stored, live = _both()
    assert stored == live
    assert not InsightDay.objects.filter(day=dt.date(2026, 3, 24)).exists()


def test_the_beat_task_closes_the_missing_days_once(history, settings):
    from loyalty.tasks import close_insight_days

    with time_machine.travel(NOW, tick=False):
        assert close_insight_days() == 400
        figures = DailyFigure.objects.count()
        assert close_insight_days() == 0
        assert DailyFigure.objects.count() == figures > 0
    with time_machine.travel(NOW + dt.timedelta(days=1), tick=False):
        assert close_insight_days() == 1  # the 25th
    assert DailyFigure.objects.get(key="redemptions.count", day=dt.date(2026, 3, 25)).value == 1


def test_the_program_time_zone_decides_the_day(history, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    with time_machine.travel(NOW, tick=False):
        stored, live = _both()
    assert stored == live
    days = {row["date"]: row for row in stored["daily"]}
    assert days[dt.date(2026, 3, 4)]["redemptions"] == 1  # 23:30 UTC on the 3rd is the 4th in Berlin
    assert days[dt.date(2026, 3, 10)]["code_redemptions"] == 1  # 23:30 UTC on the 9th


def test_reopen_and_close_again_store_the_same_figures(history):
    with time_machine.travel(NOW, tick=False):
        report.build_summary(PERIOD)
        first = sorted(DailyFigure.objects.values_list("day", "key", "dim", "value"))
        service.reopen_days(d(2026, 3, 1), d(2026, 3, 24))
        assert not DailyFigure.objects.exists() and not InsightDay.objects.exists()
        rollup.ensure_closed(PERIOD)
        assert sorted(DailyFigure.objects.values_list("day", "key", "dim", "value")) == first


def test_the_command_reopens_and_closes_days_again(history):
    from io import StringIO

    from django.core.management import call_command

    with time_machine.travel(NOW, tick=False):
        service.close_recent_days()
        DailyFigure.objects.filter(key="redemptions.count", day=dt.date(2026, 3, 2)).update(value=40)
        out = StringIO()
        call_command("close_insight_days", "--reopen", "2026-03-02", "2026-03-03", stdout=out, stderr=StringIO())
        assert out.getvalue().strip() == "2 days stored."
        stored, live = _both()
    assert stored == live
    assert DailyFigure.objects.get(key="redemptions.count", day=dt.date(2026, 3, 2)).value == 2
