from decimal import Decimal

import pytest
import time_machine
from django.core import mail

from loyalty import outbox, roles, services
from loyalty.exceptions import BusinessRuleViolation, Conflict, FourEyesRequired, PermissionRequired
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, MemberTracker, OutboxMessage, PointBalance, ProgramSettings, Transaction
from loyalty.selectors import verify_ledger
from retro import services as retro
from retro.models import RetroClaim
from tests.helpers import BY_TIER, FIXED, d, make_user


@pytest.fixture
def program(db):
    program = ProgramSettings.load()
    program.retro_enabled = True
    program.save()
    return program


@pytest.fixture
def seed_world(program, metric, tiers, admin_user, support_user):
    """Seed 002: Silver on 2023-05-20, Gold from 2023-08-10; rules changed on 2023-08-10."""
    with time_machine.travel(d(2023, 1, 1), tick=False):
        old = services.create_rule_set(name="Spring", valid_from=d(2023, 1, 1), rules=[BY_TIER], actor=admin_user)
        services.publish_rule_set(rule_set=old, actor=admin_user)
        member = services.enroll_member(
            external_id="SEED", email="seed@example.com", tier=tiers["SILVER"], actor=SYSTEM
        )
    with time_machine.travel(d(2023, 5, 20, 14), tick=False):
        txn = services.record_transaction(
            external_id="BILL-0520",
            occurred_at=d(2023, 5, 20, 14),
            amount=Decimal("300.00"),
            currency="EUR",
            store="AMS-1",
            actor=SYSTEM,
        )
    with time_machine.travel(d(2023, 8, 10), tick=False):
        new = services.new_rule_set_version(rule_set=old, actor=admin_user)
        services.update_rule_set(rule_set=new, actor=admin_user, rules=[{**FIXED, "points": 5}])
        services.publish_rule_set(rule_set=new, actor=admin_user)
        services.change_tier(member=member, tier=tiers["GOLD"], actor=support_user, reason="big purchase")
    return member, txn


@pytest.mark.django_db
def test_seed_scenario_points_follow_the_purchase_date_rules_and_tier(
    seed_world, support_user, approver_user, django_capture_on_commit_callbacks
):
    member, txn = seed_world
    with time_machine.travel(d(2023, 8, 17, 9), tick=False):
        claim = retro.submit_retro_claim(transaction_=txn, member=member, actor=support_user, note="forgot card")
        assert claim.preview["points"] == 45  # Silver 15% of 300, by the May rules
        assert claim.preview["tier"] == "SILVER" and claim.preview["rule_set"]["name"] == "Spring"
        with django_capture_on_commit_callbacks(execute=True):
            retro.approve_retro_claim(claim=claim, actor=approver_user)  # eager Celery processes on commit
    claim.refresh_from_db()
    assert claim.status == "processed" and claim.points_awarded == 45
    assert claim.ledger_entry.kind == "retro" and claim.ledger_entry.amount == 45
    assert PointBalance.objects.get(member=member).balance == 45
    txn.refresh_from_db()
    assert txn.member == member and txn.processed_at == d(2023, 8, 17, 9)
    # trackers count it in the processing period (2023), at processing time
    tracker = MemberTracker.objects.get(member=member)
    assert tracker.period_start == d(2023, 1, 1) and tracker.spend == Decimal("300.00")
    assert [m.subject for m in mail.outbox] == ["45 points added for your purchase BILL-0520"]
    assert verify_ledger().ok


@pytest.mark.django_db
def test_four_eyes_and_only_approvers_approve(seed_world, support_user):
    member, txn = seed_world
    both = make_user("lead", roles.SUPPORT_AGENT, roles.APPROVER)
    with time_machine.travel(d(2023, 8, 17), tick=False):
        claim = retro.submit_retro_claim(transaction_=txn, member=member, actor=both)
        with pytest.raises(FourEyesRequired) as exc:
            retro.approve_retro_claim(claim=claim, actor=both)
        assert exc.value.code == "four_eyes_required" and exc.value.status == 422
        with pytest.raises(PermissionRequired):
            retro.approve_retro_claim(claim=claim, actor=support_user)
    claim.refresh_from_db()
    assert claim.status == "submitted" and not LedgerEntry.objects.filter(kind="retro").exists()


@pytest.mark.django_db
def test_refusals_each_carry_their_code_and_write_nothing(seed_world, support_user, program, tiers):
    member, txn = seed_world
    cases = []
    with time_machine.travel(d(2023, 8, 19), tick=False):
        program.retro_window_days = 30
        program.save()
        cases.append(("retro_window_closed", txn, member))
    for code, t, m in cases:
        with time_machine.travel(d(2023, 8, 19), tick=False), pytest.raises(BusinessRuleViolation) as exc:
            retro.submit_retro_claim(transaction_=t, member=m, actor=support_user)
        assert exc.value.code == code
    program.retro_window_days = 90
    program.retro_enabled = False
    program.save()
    with time_machine.travel(d(2023, 8, 19), tick=False), pytest.raises(BusinessRuleViolation) as exc:
        retro.submit_retro_claim(transaction_=txn, member=member, actor=support_user)
    assert exc.value.code == "retro_disabled"
    program.retro_enabled = True
    program.save()
    # purchase long before the member enrolled
    with time_machine.travel(d(2023, 8, 17), tick=False):
        late = services.enroll_member(external_id="LATE", enrolled_at=d(2023, 7, 1), actor=SYSTEM)
        with pytest.raises(BusinessRuleViolation) as exc:
            retro.submit_retro_claim(transaction_=txn, member=late, actor=support_user)
        assert exc.value.code == "before_enrolment"
        # someone else's (already loyalty) transaction
        owned = services.record_transaction(
            external_id="OWNED", occurred_at=d(2023, 8, 16), amount="10.00", currency="EUR", member=late, actor=SYSTEM
        )
        with pytest.raises(Conflict) as exc:
            retro.submit_retro_claim(transaction_=owned, member=member, actor=support_user)
        assert exc.value.code == "already_claimed"
        # duplicate live claim
        retro.submit_retro_claim(transaction_=txn, member=member, actor=support_user)
        with pytest.raises(Conflict) as exc:
            retro.submit_retro_claim(transaction_=txn, member=member, actor=support_user)
        assert exc.value.code == "already_claimed"
    assert RetroClaim.objects.count() == 1
    assert not LedgerEntry.objects.filter(kind="retro").exists()


@pytest.mark.django_db
def test_claim_limit_per_member(seed_world, support_user, program):
    member, _ = seed_world
    program.retro_max_claims_per_30_days = 1
    program.save()
    with time_machine.travel(d(2023, 8, 17), tick=False):
        bills = [
            services.record_transaction(
                external_id=f"X{i}", occurred_at=d(2023, 8, 1), amount="10.00", currency="EUR", actor=SYSTEM
            )
            for i in range(2)
        ]
        retro.submit_retro_claim(transaction_=bills[0], member=member, actor=support_user)
        with pytest.raises(BusinessRuleViolation) as exc:
            retro.submit_retro_claim(transaction_=bills[1], member=member, actor=support_user)
    assert exc.value.code == "limit_reached"


@pytest.mark.django_db
def test_processing_twice_credits_once(seed_world, support_user, approver_user, django_capture_on_commit_callbacks):
    member, txn = seed_world
    with time_machine.travel(d(2023, 8, 17), tick=False):
        claim = retro.submit_retro_claim(transaction_=txn, member=member, actor=support_user)
        with django_capture_on_commit_callbacks(execute=False):
            retro.approve_retro_claim(claim=claim, actor=approver_user)
        first = retro.process_retro_claim(claim_id=claim.pk)
        second = retro.process_retro_claim(claim_id=claim.pk)
    assert first == {"claim": claim.pk, "points": 45}
    assert second == {"claim": claim.pk, "skipped": "processed"}
    assert LedgerEntry.objects.filter(kind="retro").count() == 1


@pytest.mark.django_db
def test_auto_approval_below_threshold(seed_world, support_user, program, django_capture_on_commit_callbacks):
    member, txn = seed_world
    program.retro_auto_approve_below_points = 100
    program.save()
    with time_machine.travel(d(2023, 8, 17), tick=False), django_capture_on_commit_callbacks(execute=True):
        claim = retro.submit_retro_claim(transaction_=txn, member=member, actor=support_user)
    claim.refresh_from_db()
    assert claim.auto_approved and claim.approved_by is None and claim.status == "processed"


@pytest.mark.django_db
def test_failed_processing_is_recorded_and_can_be_retried(
    seed_world, support_user, approver_user, django_capture_on_commit_callbacks
):
    member, txn = seed_world
    with time_machine.travel(d(2023, 8, 17), tick=False):
        claim = retro.submit_retro_claim(transaction_=txn, member=member, actor=support_user)
        with django_capture_on_commit_callbacks(execute=False):
            retro.approve_retro_claim(claim=claim, actor=approver_user)
        services.update_member(member=member, actor=support_user, status="suspended", reason="check")
        assert retro.process_retro_claim(claim_id=claim.pk) == {"claim": claim.pk, "failed": "member_inactive"}
        claim.refresh_from_db()
        assert claim.status == "failed" and "suspended" in claim.error
        services.update_member(member=member, actor=support_user, status="active", reason="ok")
        with django_capture_on_commit_callbacks(execute=True):
            retro.approve_retro_claim(claim=claim, actor=approver_user)
    claim.refresh_from_db()
    assert claim.status == "processed" and Transaction.objects.get(pk=txn.pk).member == member


@pytest.mark.django_db
def test_the_requester_cannot_reject_their_own_claim_either(seed_world, approver_user):
    member, txn = seed_world
    both = make_user("lead2", roles.SUPPORT_AGENT, roles.APPROVER)
    with time_machine.travel(d(2023, 8, 17), tick=False):
        claim = retro.submit_retro_claim(transaction_=txn, member=member, actor=both)
        with pytest.raises(FourEyesRequired):
            retro.reject_retro_claim(claim=claim, actor=both, reason="mine")
        retro.reject_retro_claim(claim=claim, actor=approver_user, reason="no receipt")
    claim.refresh_from_db()
    assert claim.status == "rejected" and claim.rejected_by == approver_user


@pytest.mark.django_db
def test_an_approval_whose_message_was_lost_is_processed_by_the_outbox_sweep(
    seed_world, support_user, approver_user, django_capture_on_commit_callbacks
):
    member, txn = seed_world
    with time_machine.travel(d(2023, 8, 17, 9), tick=False):
        claim = retro.submit_retro_claim(transaction_=txn, member=member, actor=support_user)
        with django_capture_on_commit_callbacks(execute=False):  # the process died right after the commit
            retro.approve_retro_claim(claim=claim, actor=approver_user)
        message = OutboxMessage.objects.get(name="retro.tasks.process_retro_claim")
        assert (message.status, message.args) == ("pending", [claim.pk])
        outbox.sweep()  # beat's job; eager Celery processes it here
    claim.refresh_from_db()
    assert claim.status == "processed" and LedgerEntry.objects.filter(kind="retro").count() == 1
    message.refresh_from_db()
    assert message.status == "done"
    outbox.sweep()
    assert LedgerEntry.objects.filter(kind="retro").count() == 1
