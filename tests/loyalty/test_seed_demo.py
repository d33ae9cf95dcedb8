"""seed_demo: idempotent, consistent, complete, and never on a production database."""

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import override_settings

from loyalty import roles
from loyalty.demo import demo_steps
from loyalty.kernel import unit_of_work
from loyalty.management.commands.seed_demo import DEMO_USERS
from loyalty.models import (
    LedgerEntry,
    Member,
    Metric,
    PointLot,
    ProgramSettings,
    Reward,
    RuleSet,
    Segment,
    Tier,
    TierMembership,
    Transaction,
    TransactionReturn,
)
from loyalty.selectors import verify_ledger
from promotions.models import AbuseSignal, Campaign, Code, CodeBatch, CodeEvent, CodeRedemption
from redemptions.models import Redemption, RewardCodePool, Rollback
from retro.models import RetroClaim
from tests.helpers import shared_transaction

COUNTED = [
    Member,
    LedgerEntry,
    PointLot,
    TierMembership,
    Reward,
    Segment,
    Metric,
    Tier,
    User,
    RuleSet,
    Transaction,
    TransactionReturn,
    Campaign,
    CodeBatch,
    Code,
    CodeRedemption,
    CodeEvent,
    AbuseSignal,
    RewardCodePool,
    Redemption,
    Rollback,
    RetroClaim,
]


def counts():
    return {model.__name__: model.objects.count() for model in COUNTED}


def run(**options):
    from io import StringIO

    out = StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


@pytest.fixture(scope="class")
def seeded(django_db_setup, django_db_blocker):
    """One seed of 30 members for the class (DEBUG on, as ``make run`` has it); its output."""
    with shared_transaction(django_db_blocker):
        with override_settings(DEBUG=True):
            output = run(members=30)
        yield output


@pytest.mark.slow
@pytest.mark.django_db
class TestOneSeed:
    """What one seed of 30 members made; the seed runs once for both tests."""

    def test_seed_demo_is_complete_consistent_and_idempotent(self, seeded, settings):
        settings.DEBUG = True
        output = seeded
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
        assert output_again.count("already seeded") == len(demo_steps())

    def test_seed_demo_fills_every_app(self, seeded):
        assert [s.name for s in demo_steps()] == ["rule sets", "purchases", "promotions", "redemptions", "retro"]
        users = {u.username: u for u in User.objects.all()}

        # loyalty: a rule set history, purchases at past dates that earned by those rules, returns
        sets = list(RuleSet.objects.filter(name="Base earning").order_by("version").values_list("version", "status"))
        assert sets == [(1, "published"), (2, "published"), (3, "draft")]
        v1, v2 = RuleSet.objects.filter(name="Base earning", status="published").order_by("version")
        assert v1.valid_to == v2.valid_from and v2.previous == v1 and v2.valid_to is None
        loyalty_bills = Transaction.objects.filter(member__isnull=False, external_id__startswith="DEMO-POS-")
        assert loyalty_bills.count() == 2 * Member.objects.filter(status="active").count()
        assert not loyalty_bills.filter(points_earned=0).exists()
        assert {b.breakdown["rule_set"]["version"] for b in loyalty_bills} == {1, 2}
        assert Transaction.objects.filter(member__isnull=True).exists()
        assert TransactionReturn.objects.filter(points_reversed__gt=0).exists()
        assert LedgerEntry.objects.filter(kind="return").exists()

        # promotions: three kinds, one stack group, the batch, WELCOME10, uses, a rollback, an anomaly
        campaigns = {c.name: c for c in Campaign.objects.all()}
        demo = [campaigns[name] for name in ("Weekend 15% off", "Welcome 10 € off", "250 bonus points")]
        assert {c.kind for c in demo} == set(Campaign.Kind.values) and {c.status for c in demo} == {"active"}
        assert {c.stack_group for c in demo if c.stacking == "stackable"} == {"weekend"}
        assert Code.objects.filter(campaign=demo[0], batch__isnull=False).count() == 500
        assert CodeBatch.objects.exclude(status="completed").count() == 0
        welcome = Code.objects.get(normalized="WELCOME10")
        assert welcome.max_uses > 1 and welcome.uses > 1
        uses = CodeRedemption.objects.all()
        assert {u.status for u in uses} == {"applied", "rolled_back"}
        assert uses.filter(order_id__in=uses.filter(campaign=demo[2]).values("order_id"), campaign=demo[0]).exists()
        assert CodeEvent.objects.filter(kind="validated", result="not_eligible").exists()
        assert AbuseSignal.objects.filter(kind="failed_validations", subject="pos-terminal-17").exists()

        # redemptions: a code pool, every lifecycle, awards, two rollbacks, legacy imports
        assert RewardCodePool.objects.filter(reward__external_id="RW-10OFF").exists()
        responses = Redemption.objects.filter(kind="redemption")
        assert responses.count() >= 25
        assert {"pending", "processing", "completed", "canceled", "errored"} <= set(
            responses.values_list("status", flat=True)
        )
        approvals = set(Redemption.objects.values_list("approval_status", flat=True))
        assert {"submitted", "approved", "rejected", "returned"} <= approvals
        assert {"shipped", "delivered"} <= set(responses.values_list("fulfillment_status", flat=True))
        assert responses.filter(issued_code__isnull=False).exists()
        assert {"awarded", "claimed"} <= set(
            Redemption.objects.filter(kind="award").values_list("award_status", flat=True)
        )
        assert responses.filter(external_ref__startswith="DEMO-LEGACY-", channel="import").count() == 3
        rollbacks = {r.status: r for r in Rollback.objects.all()}
        assert set(rollbacks) == {"executed", "pending_approval"}
        assert rollbacks["executed"].points_returned > 0
        pending = rollbacks["pending_approval"]
        assert pending.reason == "fraud" and pending.requested_by == users["support"]
        # four-eyes everywhere: whoever decided did not create
        for r in Redemption.objects.filter(decided_by__isnull=False):
            assert r.decided_by_id != r.created_by_id

        # retro: switched on, claims filed by support, one approved by someone else and processed
        assert ProgramSettings.load().retro_enabled
        claims = RetroClaim.objects.all()
        assert {c.requested_by for c in claims} == {users["support"]}
        assert claims.filter(status="submitted").count() >= 2
        processed = claims.get(status="processed")
        assert processed.approved_by == users["approver"] and processed.points_awarded > 0
        assert processed.transaction.member == processed.member
        assert LedgerEntry.objects.filter(kind="retro").exists()
        assert verify_ledger().ok


class _Rollback(Exception):
    pass


def fingerprint():
    """Everything but timestamps, primary keys and generated code texts (random by design)."""
    return (
        list(
            Member.objects.order_by("external_id").values_list("external_id", "name", "email", "status", "tier__code")
        ),
        sorted(LedgerEntry.objects.values_list("member__external_id", "kind", "amount", "source_type", "metric__code")),
        list(RuleSet.objects.order_by("name", "version").values_list("name", "version", "status")),
        list(
            Transaction.objects.order_by("external_id").values_list(
                "external_id", "member__external_id", "amount", "channel", "store", "points_earned", "returned_amount"
            )
        ),
        sorted(Campaign.objects.values_list("name", "status", "redemptions_count", "discount_total")),
        sorted(
            (campaign, status, count)
            for campaign, status, count in Code.objects.values_list("campaign__name", "status", "uses")
        ),
        sorted(
            CodeRedemption.objects.values_list(
                "order_id", "campaign__name", "member__external_id", "discount", "bonus_points", "status"
            )
        ),
        sorted(AbuseSignal.objects.exclude(subject_type="member").values_list("kind", "subject_type", "subject")),
        sorted(
            Redemption.objects.values_list(
                "kind",
                "reward__external_id",
                "member__external_id",
                "status",
                "award_status",
                "approval_status",
                "fulfillment_status",
                "points_spent",
                "points_returned",
                "external_ref",
            ),
            key=repr,
        ),
        sorted(Rollback.objects.values_list("member__external_id", "reason", "status", "points_returned")),
        sorted(
            RetroClaim.objects.values_list(
                "transaction__external_id", "member__external_id", "status", "preview_points", "points_awarded"
            ),
            key=repr,
        ),
    )


@pytest.mark.slow
@pytest.mark.django_db
def test_seed_demo_is_deterministic(settings):
    import datetime as dt

    import time_machine

    settings.DEBUG = True
    # The seed dates things relative to "now": pin it so both runs see the same moment.
    frozen = time_machine.travel(dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC), tick=False)
    with frozen:
        try:
            with unit_of_work("test: a seed rolled back"):  # seed_demo's own unit joins it
                run(members=12)
                first = fingerprint()
                raise _Rollback
        except _Rollback:
            pass
        assert Member.objects.count() == 0
        run(members=12)
        assert fingerprint() == first
    assert len({name for _, name, *_ in first[0]}) > 5
    assert all(first), "every part of the fingerprint has data"


@pytest.mark.django_db
def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        run(members=3)
    assert Member.objects.count() == 0
    assert not User.objects.filter(username="support").exists()


@pytest.mark.slow
@pytest.mark.django_db
def test_seed_demo_runs_with_force(settings):
    settings.DEBUG = False
    run(members=3, force=True)
    assert Member.objects.count() == 3
    assert User.objects.get(username="admin").is_superuser
