"""seed_demo: idempotent, consistent, complete, and never on a production database."""

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import transaction

from loyalty import roles
from loyalty.management.commands.seed_demo import DEMO_USERS
from loyalty.models import (
    LedgerEntry,
    Member,
    Metric,
    PointLot,
    Reward,
    Segment,
    Tier,
    TierMembership,
)
from loyalty.selectors import verify_ledger

COUNTED = [Member, LedgerEntry, PointLot, TierMembership, Reward, Segment, Metric, Tier, User]


def counts():
    return {model.__name__: model.objects.count() for model in COUNTED}


def run(**options):
    from io import StringIO

    out = StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_is_complete_consistent_and_idempotent(settings):
    settings.DEBUG = True
    output = run(members=30)
    first = counts()
    assert first["Member"] == 30
    assert first["LedgerEntry"] > 60
    assert verify_ledger().ok

    output_again = run(members=30)
    assert counts() == first
    assert verify_ledger().ok

    # metrics and tiers
    points, credits = Metric.objects.get(code="points"), Metric.objects.get(code="status_credits")
    assert (points.expiry_days, credits.expiry_days) == (365, None)
    tiers = list(Tier.objects.order_by("rank").values_list("code", "rank"))
    assert tiers == [("BRONZE", 1), ("SILVER", 2), ("GOLD", 3)]
    # a varied ledger: every member has history, some lots expire soon, some already expired
    kinds = set(LedgerEntry.objects.values_list("kind", flat=True))
    assert {"earn", "redeem", "adjustment", "expiry"} <= kinds
    assert PointLot.objects.filter(remaining__gt=0, expires_at__isnull=True).exists()
    assert TierMembership.objects.exclude(tier__code="BRONZE").exists()
    assert Member.objects.exclude(status="active").exists()
    assert Segment.objects.count() == 2 and all(s.members.exists() for s in Segment.objects.all())
    # every reward type, with and without stock, approval and fulfilment, some for certain tiers
    rewards = Reward.objects.all()
    assert {r.type for r in rewards} == set(Reward.Type.values)
    assert {r.stock is None for r in rewards} == {True, False}
    assert {r.requires_approval for r in rewards} == {True, False}
    assert {r.requires_fulfillment for r in rewards} == {True, False}
    assert Reward.objects.filter(eligible_tiers__isnull=False).exists()
    # one user per role, in its group, with the documented password; admin is a superuser
    for username, role in DEMO_USERS:
        user = User.objects.get(username=username)
        assert user.check_password(f"demo-{username}")
        if role is None:
            assert user.is_superuser and user.is_staff
        else:
            assert list(user.groups.values_list("name", flat=True)) == [role]
            assert user.is_staff == (role in roles.STAFF_ROLES)
    for text in (output, output_again):
        assert "http://127.0.0.1:8000/admin/" in text and "demo-support" in text


class _Rollback(Exception):
    pass


def fingerprint():
    return (
        list(
            Member.objects.order_by("external_id").values_list("external_id", "name", "email", "status", "tier__code")
        ),
        sorted(LedgerEntry.objects.values_list("member__external_id", "kind", "amount", "source_type", "metric__code")),
    )


@pytest.mark.django_db
def test_seed_demo_is_deterministic(settings):
    settings.DEBUG = True
    try:
        with transaction.atomic():
            run(members=12)
            first = fingerprint()
            raise _Rollback
    except _Rollback:
        pass
    assert Member.objects.count() == 0
    run(members=12)
    assert fingerprint() == first
    assert len({name for _, name, *_ in first[0]}) > 5


@pytest.mark.django_db
def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        run(members=3)
    assert Member.objects.count() == 0
    assert not User.objects.filter(username="support").exists()


@pytest.mark.django_db
def test_seed_demo_runs_with_force(settings):
    settings.DEBUG = False
    run(members=3, force=True)
    assert Member.objects.count() == 3
    assert User.objects.get(username="admin").is_superuser
