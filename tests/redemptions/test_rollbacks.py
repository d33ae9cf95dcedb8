import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from loyalty import roles
from loyalty import services as loyalty
from loyalty.exceptions import ExceedsSpent, FourEyesRequired, InvalidTransition
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, Reward
from loyalty.selectors import verify_ledger
from promotions import services as promotions
from promotions.models import AbuseSignal, Code
from redemptions import services
from redemptions.models import Redemption, Rollback
from tests.helpers import balance, make_user

T0 = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)


@pytest.mark.django_db
def test_seed_003_in_one_action_code_voided_points_back_member_told(
    member, metric, code_reward, support_user, django_capture_on_commit_callbacks
):
    loyalty.credit_points(member=member, metric=metric, amount=500, actor=SYSTEM)
    with django_capture_on_commit_callbacks(execute=True):
        red = services.redeem_reward(member=member, reward=code_reward, actor=support_user)
        assert balance(member) == 400 and red.issued_code.assigned_member == member
        rollback = services.rollback_redemption(
            redemption=red, reason="customer_request", actor=support_user, note="redeemed by mistake"
        )
    assert (rollback.status, rollback.points_returned, rollback.code_voided, rollback.notified) == (
        "executed",
        100,
        True,
        True,
    )
    assert Code.objects.get(pk=red.issued_code_id).status == "void"
    red.refresh_from_db()
    assert red.status == "canceled" and red.points_returned == 100
    assert balance(member) == 500
    assert [m.subject for m in mail.outbox] == ["Your redemption of 10 EUR voucher was undone"]
    assert red.issued_code.code in mail.outbox[0].body
    assert verify_ledger().ok


@pytest.mark.django_db
def test_full_and_partial_rollbacks_restore_lots_with_their_expiries(member, metric, reward, support_user, policy):
    with time_machine.travel(T0, tick=False):
        soon = loyalty.credit_points(
            member=member, metric=metric, amount=60, expires_at=T0 + dt.timedelta(days=10), actor=SYSTEM
        )
        late = loyalty.credit_points(
            member=member, metric=metric, amount=100, expires_at=T0 + dt.timedelta(days=200), actor=SYSTEM
        )
        red = services.redeem_reward(member=member, reward=reward(points=100), actor=support_user)  # 60 soon + 40 late
    with time_machine.travel(T0 + dt.timedelta(days=1), tick=False):
        part = services.rollback_redemption(redemption=red, reason="technical_error", points=30, actor=support_user)
        assert [(e.amount, e.expires_at) for e in part.ledger_entries.all()] == [(30, late.expires_at)]
    with time_machine.travel(T0 + dt.timedelta(days=20), tick=False):
        rest = services.rollback_redemption(redemption=red, reason="technical_error", actor=support_user)
        got = sorted((e.amount, e.expires_at) for e in rest.ledger_entries.all())
        assert got == [(10, late.expires_at), (60, soon.expires_at)]
        # the soon lot had expired: its 60 points came back expired, nobody escapes expiry
        assert LedgerEntry.objects.filter(kind="expiry", amount=-60).exists()
    red.refresh_from_db()
    assert (red.status, red.points_returned) == ("canceled", 100)
    assert balance(member) == 100  # 60 of late left + 40 returned to late
    assert verify_ledger().ok


@pytest.mark.django_db
def test_grace_period_is_granted_and_stated(member, metric, reward, support_user, policy):
    policy.rollback_expired_lot_grace_days = 7
    policy.save()
    with time_machine.travel(T0, tick=False):
        loyalty.credit_points(
            member=member, metric=metric, amount=100, expires_at=T0 + dt.timedelta(days=5), actor=SYSTEM
        )
        red = services.redeem_reward(member=member, reward=reward(points=100), actor=support_user)
    with time_machine.travel(T0 + dt.timedelta(days=10), tick=False):
        rollback = services.rollback_redemption(redemption=red, reason="customer_request", actor=support_user)
    [entry] = rollback.ledger_entries.all()
    assert entry.expires_at == T0 + dt.timedelta(days=17) and entry.breakdown["grace_days"] == 7
    assert balance(member) == 100


@pytest.mark.django_db
def test_policy_refusals_carry_their_codes_and_write_nothing(
    rich_member, reward, code_reward, support_user, admin_user, policy
):
    def attempt(redemption, **kw):
        with pytest.raises(Exception) as exc:
            services.rollback_redemption(redemption=redemption, actor=support_user, reason="customer_request", **kw)
        return exc.value.code

    with time_machine.travel(timezone.now() - dt.timedelta(days=31)):
        old = services.redeem_reward(member=rich_member, reward=reward(), actor=support_user)
    assert attempt(old) == "rollback_window_closed"
    shipped = services.redeem_reward(member=rich_member, reward=reward(requires_fulfillment=True), actor=support_user)
    services.change_fulfillment(redemption=shipped, fulfillment_status="confirmed_paid", actor=support_user)
    services.change_fulfillment(redemption=shipped, fulfillment_status="shipped", actor=support_user)
    assert attempt(shipped) == "invalid_transition"
    used = services.redeem_reward(member=rich_member, reward=code_reward, actor=support_user)
    promotions.redeem_codes(
        promotions.clean_request(codes=[used.issued_code.code], member=rich_member, order={"amount": "50"}),
        actor=admin_user,
    )
    assert attempt(used) == "code_already_used"
    fine = services.redeem_reward(member=rich_member, reward=reward(), actor=support_user)
    assert attempt(fine, points=101) == "exceeds_spent"
    policy.rollback_partial_allowed = False
    policy.save()
    assert attempt(fine, points=50) == "partial_not_allowed"
    assert not Rollback.objects.exists()
    assert not LedgerEntry.objects.filter(kind="rollback").exists()


@pytest.mark.django_db
def test_fraud_and_large_rollbacks_wait_for_a_second_person(
    rich_member, reward, support_user, approver_user, policy, django_capture_on_commit_callbacks
):
    policy.rollback_approval_above_points = 150
    policy.save()
    lead = make_user("lead", roles.SUPPORT_AGENT, roles.APPROVER)
    fraud = services.redeem_reward(member=rich_member, reward=reward(), actor=support_user)
    with django_capture_on_commit_callbacks(execute=True):
        pending = services.rollback_redemption(redemption=fraud, reason="fraud", actor=lead)
    assert pending.status == "pending_approval" and "fraud" in pending.approval_required_because
    assert balance(rich_member) == 900  # unchanged until approved
    assert pending.notified and "received the request" in mail.outbox[-1].body
    with pytest.raises(FourEyesRequired):
        services.approve_rollback(rollback=pending, actor=lead)
    with pytest.raises(Exception) as exc:
        services.approve_rollback(rollback=pending, actor=support_user)
    assert exc.value.code == "permission_denied"
    services.approve_rollback(rollback=pending, actor=approver_user)
    assert balance(rich_member) == 1000
    pending.refresh_from_db()
    assert (pending.status, pending.points_returned, pending.approved_by) == ("executed", 100, approver_user)
    big = services.redeem_reward(member=rich_member, reward=reward(points=200), actor=support_user)
    waiting = services.rollback_redemption(redemption=big, reason="customer_request", actor=support_user)
    assert waiting.status == "pending_approval" and "200 points > 150" in waiting.approval_required_because
    services.reject_rollback(rollback=waiting, actor=approver_user, reason="outside policy")
    waiting.refresh_from_db()
    big.refresh_from_db()
    assert waiting.status == "rejected" and big.status == "pending" and big.points_returned == 0
    assert verify_ledger().ok


@pytest.mark.django_db
def test_repeated_rollbacks_need_approval_and_flag_the_member(rich_member, reward, support_user, policy):
    policy.rollback_max_per_member_30_days = 2
    policy.save()
    for _ in range(2):
        red = services.redeem_reward(member=rich_member, reward=reward(points=10), actor=support_user)
        assert services.rollback_redemption(redemption=red, reason="other", actor=support_user).status == "executed"
    red = services.redeem_reward(member=rich_member, reward=reward(points=10), actor=support_user)
    third = services.rollback_redemption(redemption=red, reason="other", actor=support_user)
    assert third.status == "pending_approval"
    assert AbuseSignal.objects.filter(kind="repeated_rollbacks", subject=str(rich_member.pk)).exists()


@pytest.mark.django_db
def test_stock_comes_back_only_when_nothing_shipped(rich_member, reward, support_user, policy):
    policy.rollback_fulfillment_statuses = ["none", "confirmed_paid", "delivered"]
    policy.save()
    r = reward(stock=2, requires_fulfillment=True)
    kept = services.redeem_reward(member=rich_member, reward=r, actor=support_user)
    delivered = services.redeem_reward(member=rich_member, reward=r, actor=support_user)
    for status in ("confirmed_paid", "shipped", "delivered"):
        services.change_fulfillment(redemption=delivered, fulfillment_status=status, actor=support_user)
    services.rollback_redemption(redemption=kept, reason="customer_request", actor=support_user)
    services.rollback_redemption(redemption=delivered, reason="customer_request", actor=support_user)
    assert Reward.objects.get(pk=r.pk).stock == 1
    assert list(Rollback.objects.order_by("pk").values_list("stock_restored", flat=True)) == [True, False]


@pytest.mark.django_db
def test_never_more_than_spent_across_rollbacks(rich_member, reward, support_user):
    red = services.redeem_reward(member=rich_member, reward=reward(points=100), actor=support_user)
    services.rollback_redemption(redemption=red, reason="other", points=70, actor=support_user)
    with pytest.raises(ExceedsSpent):
        services.rollback_redemption(redemption=red, reason="other", points=31, actor=support_user)
    services.rollback_redemption(redemption=red, reason="other", actor=support_user)  # the last 30
    with pytest.raises((ExceedsSpent, InvalidTransition)):
        services.rollback_redemption(redemption=red, reason="other", actor=support_user)
    assert Redemption.objects.get(pk=red.pk).points_returned == 100


@pytest.mark.django_db
def test_legacy_imports_move_no_points_are_unique_and_cannot_be_rolled_back(member, reward, admin_user, support_user):
    from loyalty.exceptions import InvalidInput, PermissionRequired

    r = reward(points=100)
    kwargs = dict(
        member=member, reward=r, quantity=1, points_spent=100, status="completed", created_at=T0, external_ref="OLD-1"
    )
    with pytest.raises(PermissionRequired):
        services.import_legacy_redemption(actor=support_user, **kwargs)
    red = services.import_legacy_redemption(actor=admin_user, **kwargs)
    assert red.created_at == T0 and red.ledger_entry is None and red.channel == "import"
    with pytest.raises(InvalidInput):
        services.import_legacy_redemption(actor=admin_user, **kwargs)
    with pytest.raises(InvalidTransition):
        services.rollback_redemption(redemption=red, reason="other", actor=admin_user)
    assert not LedgerEntry.objects.exists()
