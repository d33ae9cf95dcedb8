import datetime as dt

import pytest
import time_machine

from loyalty import services
from loyalty.exceptions import AlreadyExists, Conflict, InvalidInput, InvalidTransition, PermissionRequired
from loyalty.kernel import SYSTEM
from loyalty.models import Member, TierMembership
from loyalty.selectors import tier_at

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.mark.django_db
def test_enrolment_opens_the_lowest_tier(tiers):
    with time_machine.travel(T0, tick=False):
        member = services.enroll_member(external_id="  C-42 ", email="c@example.com", actor=SYSTEM)
    assert member.external_id == "C-42"
    assert member.tier == tiers["BRONZE"]
    [interval] = TierMembership.objects.filter(member=member)
    assert (interval.valid_from, interval.valid_to, interval.cause) == (T0, None, "enrolment")


@pytest.mark.django_db
def test_duplicate_external_id_is_refused(member):
    with pytest.raises(AlreadyExists) as exc:
        services.enroll_member(external_id=member.external_id, actor=SYSTEM)
    assert exc.value.code == "already_exists"
    assert Member.objects.count() == 1


@pytest.mark.django_db
def test_change_tier_closes_the_open_interval_and_tier_at_reads_history(member, tiers, support_user):
    enrolled = member.enrolled_at
    with time_machine.travel(enrolled + dt.timedelta(days=10), tick=False):
        services.change_tier(member=member, tier=tiers["SILVER"], actor=support_user, reason="VIP request")
    with time_machine.travel(enrolled + dt.timedelta(days=20), tick=False):
        services.change_tier(member=member, tier=tiers["GOLD"], actor=support_user, reason="complaint")
    member.refresh_from_db()
    assert member.tier == tiers["GOLD"]
    assert tier_at(member, enrolled + dt.timedelta(days=5)) == tiers["BRONZE"]
    assert tier_at(member, enrolled + dt.timedelta(days=10)) == tiers["SILVER"]  # half-open: starts inclusive
    assert tier_at(member, enrolled + dt.timedelta(days=19, hours=23)) == tiers["SILVER"]
    assert tier_at(member, enrolled + dt.timedelta(days=20)) == tiers["GOLD"]
    assert tier_at(member, enrolled - dt.timedelta(seconds=1)) is None
    history = list(TierMembership.objects.filter(member=member).order_by("valid_from"))
    assert [h.tier.code for h in history] == ["BRONZE", "SILVER", "GOLD"]
    assert history[0].valid_to == history[1].valid_from
    assert history[2].changed_by == support_user and history[2].reason == "complaint"
    # the member's own history records who changed the tier and why
    last = member.history.order_by("-history_date").first()
    assert last.history_user == support_user and "complaint" in last.history_change_reason


@pytest.mark.django_db
def test_change_tier_needs_permission_and_reason(member, tiers, approver_user, support_user):
    with pytest.raises(PermissionRequired):
        services.change_tier(member=member, tier=tiers["GOLD"], actor=approver_user, reason="why not")
    with pytest.raises(InvalidInput):
        services.change_tier(member=member, tier=tiers["GOLD"], actor=support_user, reason="")
    with pytest.raises(Conflict):
        services.change_tier(member=member, tier=tiers["BRONZE"], actor=support_user, reason="same")
    assert TierMembership.objects.filter(member=member).count() == 1


@pytest.mark.django_db
def test_imported_intervals_may_not_overlap(member, tiers, support_user):
    start = member.enrolled_at - dt.timedelta(days=100)
    services.record_tier_interval(
        member=member,
        tier=tiers["SILVER"],
        valid_from=start,
        valid_to=start + dt.timedelta(days=50),
        actor=support_user,
        reason="legacy",
    )
    with pytest.raises(Conflict) as exc:
        services.record_tier_interval(
            member=member,
            tier=tiers["GOLD"],
            valid_from=start + dt.timedelta(days=49),
            valid_to=start + dt.timedelta(days=60),
            actor=support_user,
            reason="legacy",
        )
    assert exc.value.code == "tier_history_overlap"
    # touching intervals are fine: [a, b) and [b, c)
    services.record_tier_interval(
        member=member,
        tier=tiers["GOLD"],
        valid_from=start + dt.timedelta(days=50),
        valid_to=start + dt.timedelta(days=60),
        actor=support_user,
        reason="legacy",
    )
    assert tier_at(member, start + dt.timedelta(days=50)) == tiers["GOLD"]


@pytest.mark.django_db
def test_member_status_follows_its_transition_table(member, support_user):
    services.update_member(member=member, actor=support_user, status="suspended", reason="fraud check")
    services.update_member(member=member, actor=support_user, status="closed", reason="customer left")
    with pytest.raises(InvalidTransition) as exc:
        services.update_member(member=member, actor=support_user, status="active", reason="oops")
    assert exc.value.code == "invalid_transition"
    member.refresh_from_db()
    assert member.status == "closed"
