import itertools

import pytest
from django.core import mail

from loyalty import roles
from loyalty.exceptions import BusinessRuleViolation, FourEyesRequired, InvalidInput, InvalidTransition
from loyalty.models import Reward
from loyalty.selectors import verify_ledger
from promotions import services as promotions
from promotions.models import Code
from redemptions import services
from redemptions.models import Redemption
from tests.helpers import balance, make_user


@pytest.mark.django_db
def test_redeem_spends_points_takes_stock_and_starts_pending(rich_member, reward, support_user):
    r = reward(stock=3)
    red = services.redeem_reward(member=rich_member, reward=r, quantity=2, actor=support_user)
    assert (red.kind, red.status, red.approval_status, red.points_spent) == ("redemption", "pending", None, 200)
    assert red.ledger_entry.amount == -200 and red.ledger_entry.source_id == str(red.pk)
    assert balance(rich_member) == 800
    r.refresh_from_db()
    assert r.stock == 1
    with pytest.raises(services.OutOfStock):
        services.redeem_reward(member=rich_member, reward=r, quantity=2, actor=support_user)
    assert balance(rich_member) == 800 and Redemption.objects.count() == 1


@pytest.mark.django_db
def test_a_new_redemption_or_award_has_one_history_row_with_its_final_values(
    rich_member, reward, code_reward, support_user
):
    red = services.redeem_reward(member=rich_member, reward=reward(), actor=support_user)
    award = services.award_reward(member=rich_member, reward=code_reward, actor=support_user, reason="Sorry")
    for obj, why in ((red, "Redeemed"), (award, "Awarded: Sorry")):
        rows = list(obj.history.all())
        assert len(rows) == 1, rows
        row = rows[0]
        assert (row.history_type, row.history_user, row.history_change_reason) == ("+", support_user, why)
        assert (row.ledger_entry_id, row.issued_code_id) == (obj.ledger_entry_id, obj.issued_code_id)
    assert red.ledger_entry_id is not None and award.issued_code_id is not None


@pytest.mark.django_db
def test_refusals_write_nothing(rich_member, reward, support_user, tiers):
    cases = [
        (reward(points=5000), "insufficient_points"),
        (reward(active=False), "reward_unavailable"),
        (reward(), "quantity"),
    ]
    gold_only = reward()
    gold_only.eligible_tiers.set([tiers["GOLD"]])
    cases.append((gold_only, "not_eligible"))
    for r, code in cases:
        quantity = 0 if code == "quantity" else 1
        with pytest.raises(Exception) as exc:
            services.redeem_reward(member=rich_member, reward=r, quantity=quantity, actor=support_user)
        assert getattr(exc.value, "code", None) == code or code in getattr(exc.value, "errors", {})
    assert not Redemption.objects.exists() and balance(rich_member) == 1000


@pytest.mark.django_db
def test_discount_code_reward_issues_a_pool_code_or_generates_one(rich_member, code_reward, support_user, admin_user):
    pool_campaign = code_reward.code_pool.campaign
    pooled = promotions.create_named_code(campaign=pool_campaign, code="POOL-0001", actor=admin_user)
    first = services.redeem_reward(member=rich_member, reward=code_reward, actor=support_user)
    assert first.issued_code == pooled
    pooled.refresh_from_db()
    assert pooled.assigned_member == rich_member and pooled.valid_until == first.expires_at
    second = services.redeem_reward(member=rich_member, reward=code_reward, actor=support_user)
    assert second.issued_code is not None and second.issued_code != pooled  # the pool was empty: generated
    assert Code.objects.filter(assigned_member=rich_member).count() == 2


@pytest.mark.django_db
def test_approval_four_eyes_reject_and_return(rich_member, reward, support_user, approver_user):
    r = reward(requires_approval=True, stock=5)
    lead = make_user("lead", roles.SUPPORT_AGENT, roles.APPROVER)
    red = services.redeem_reward(member=rich_member, reward=r, actor=lead)
    assert red.approval_status == "submitted"
    with pytest.raises(FourEyesRequired):
        services.approve_redemption(redemption=red, actor=lead)
    services.approve_redemption(
        redemption=services.redeem_reward(member=rich_member, reward=r, actor=support_user), actor=approver_user
    )
    # reject: points and stock back, cannot redeem that reward again
    rejected = services.redeem_reward(
        member=rich_member, reward=reward(requires_approval=True, stock=1), actor=support_user
    )
    services.reject_redemption(redemption=rejected, actor=approver_user, reason="suspicious")
    rejected.refresh_from_db()
    assert (rejected.status, rejected.approval_status, rejected.points_returned) == ("canceled", "rejected", 100)
    assert Reward.objects.get(pk=rejected.reward_id).stock == 1
    with pytest.raises(BusinessRuleViolation) as exc:
        services.redeem_reward(member=rich_member, reward=rejected.reward, actor=support_user)
    assert exc.value.code == "not_eligible"
    # return: points back, may redeem again
    returned_reward = reward(requires_approval=True)
    returned = services.redeem_reward(member=rich_member, reward=returned_reward, actor=support_user)
    services.return_redemption(redemption=returned, actor=approver_user, reason="size unavailable, pick another")
    services.redeem_reward(member=rich_member, reward=returned_reward, actor=support_user)
    assert verify_ledger().ok


@pytest.mark.django_db
def test_awards_are_free_permission_checked_and_claimable(member, reward, support_user, approver_user):
    r = reward(stock=2)
    with pytest.raises(Exception) as exc:
        services.award_reward(member=member, reward=r, actor=approver_user, reason="birthday")
    assert exc.value.code == "permission_denied"
    with pytest.raises(InvalidInput):
        services.award_reward(member=member, reward=r, actor=support_user, reason="")
    award = services.award_reward(member=member, reward=r, actor=support_user, reason="birthday")
    assert (award.kind, award.points_spent, award.award_status) == ("award", 0, "awarded")
    services.change_award_status(redemption=award, award_status="claimed", actor=support_user)
    award.refresh_from_db()
    assert award.award_status == "claimed"


STATUS_TABLE = Redemption.STATUS_TRANSITIONS


@pytest.mark.django_db
@pytest.mark.parametrize("start,target", list(itertools.product(Redemption.Status.values, repeat=2)))
def test_every_processing_transition_follows_the_table(rich_member, reward, support_user, start, target):
    red = services.redeem_reward(member=rich_member, reward=reward(), actor=support_user)
    Redemption.objects.filter(pk=red.pk).update(status=start)
    if target in STATUS_TABLE[start]:
        services.change_status(redemption=red, status=target, actor=support_user)
        red.refresh_from_db()
        assert red.status == target
        if target == "canceled":
            assert red.points_returned == 100
    else:
        with pytest.raises(InvalidTransition):
            services.change_status(redemption=red, status=target, actor=support_user)
        red.refresh_from_db()
        assert red.status == start and red.points_returned == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "start,target", list(itertools.product([None, *Redemption.Fulfillment.values], Redemption.Fulfillment.values))
)
def test_every_fulfillment_transition_follows_the_table(rich_member, reward, support_user, start, target):
    red = services.redeem_reward(member=rich_member, reward=reward(requires_fulfillment=True), actor=support_user)
    Redemption.objects.filter(pk=red.pk).update(fulfillment_status=start)
    if target in Redemption.FULFILLMENT_TRANSITIONS[start]:
        services.change_fulfillment(redemption=red, fulfillment_status=target, actor=support_user, tracking_ref="T1")
        red.refresh_from_db()
        assert red.fulfillment_status == target
    else:
        with pytest.raises(InvalidTransition):
            services.change_fulfillment(redemption=red, fulfillment_status=target, actor=support_user)
        red.refresh_from_db()
        assert red.fulfillment_status == start


@pytest.mark.django_db
def test_members_get_emails_on_decisions_and_shipping(
    rich_member, reward, support_user, approver_user, django_capture_on_commit_callbacks
):
    r = reward(requires_approval=True, requires_fulfillment=True, name="Espresso machine")
    with django_capture_on_commit_callbacks(execute=True):
        red = services.redeem_reward(member=rich_member, reward=r, actor=support_user)
        services.approve_redemption(redemption=red, actor=approver_user)
        services.change_fulfillment(redemption=red, fulfillment_status="confirmed_paid", actor=support_user)
        services.change_fulfillment(
            redemption=red, fulfillment_status="shipped", actor=support_user, tracking_ref="DHL-123"
        )
        services.change_fulfillment(redemption=red, fulfillment_status="delivered", actor=support_user)
    assert [m.subject for m in mail.outbox] == [
        "Your redemption of Espresso machine is approved",
        "Espresso machine is on its way",
        "Espresso machine was delivered",
    ]
    assert "DHL-123" in mail.outbox[1].body


@pytest.mark.django_db
def test_unclaimed_awards_expire(member, reward, support_user):
    import datetime as dt

    import time_machine
    from django.utils import timezone

    r = reward(valid_days=7, stock=1)
    award = services.award_reward(member=member, reward=r, actor=support_user, reason="welcome")
    with time_machine.travel(timezone.now() + dt.timedelta(days=8)):
        assert services.expire_awards() == 1
    award.refresh_from_db()
    assert (award.status, award.award_status) == ("canceled", "canceled")
    assert Reward.objects.get(pk=r.pk).stock == 1
