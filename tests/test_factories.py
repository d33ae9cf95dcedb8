"""The factories build valid data through the services: the ledger verifies, statuses are reached
through the transition tables (with history), and users carry the roles they are named for."""

import pytest

from loyalty import roles
from loyalty.models import LedgerEntry, PointBalance
from loyalty.selectors import verify_ledger
from tests import factories as f
from tests.helpers import balance


@pytest.mark.django_db
def test_role_factories_give_the_group_staff_flag_and_a_known_password():
    for factory, role, staff in [
        (f.SupportAgentFactory, roles.SUPPORT_AGENT, True),
        (f.ApproverFactory, roles.APPROVER, True),
        (f.CampaignManagerFactory, roles.CAMPAIGN_MANAGER, True),
        (f.AuditorFactory, roles.AUDITOR, True),
        (f.IntegrationUserFactory, roles.INTEGRATION, False),
    ]:
        user = factory()
        assert list(user.groups.values_list("name", flat=True)) == [role]
        assert user.is_staff is staff and not user.is_superuser
        assert user.check_password(f"pw-{user.username}")
    admin = f.SuperuserFactory()
    assert admin.is_superuser and admin.is_staff and not admin.groups.exists()
    assert f.UserFactory(username="same") == f.UserFactory(username="same")


@pytest.mark.django_db
def test_member_points_go_through_the_ledger():
    member = f.MemberFactory(points=300)
    assert balance(member) == 300
    assert list(LedgerEntry.objects.filter(member=member).values_list("kind", "amount")) == [("earn", 300)]
    f.credit(member, 50)
    assert balance(member) == 350
    assert not LedgerEntry.objects.filter(member=f.MemberFactory()).exists()
    assert verify_ledger().ok


@pytest.mark.django_db
def test_service_factories_refuse_build():
    with pytest.raises(TypeError, match="through the services"):
        f.MemberFactory.build()


@pytest.mark.django_db
def test_rule_set_and_transaction_earn_by_the_published_rules():
    f.standard_tiers()
    rule_set = f.RuleSetFactory()
    assert rule_set.status == "published" and rule_set.history.count() >= 2
    assert f.RuleSetFactory(publish=False, name="Draft").status == "draft"
    txn = f.TransactionFactory()
    assert txn.points_earned == 10 and balance(txn.member) == 10
    assert txn.member.tier.code == "BRONZE"
    assert verify_ledger().ok


@pytest.mark.django_db
def test_campaign_batch_code_and_code_redemption():
    campaign = f.CampaignFactory(status="paused")
    assert campaign.status == "paused"
    assert [h.status for h in campaign.history.order_by("history_id")] == ["draft", "active", "paused"]
    batch = f.CodeBatchFactory(count=4)
    assert batch.status == "completed" and batch.codes.count() == 4
    assert f.CodeBatchFactory(count=2, generate=False).status == "pending"
    use = f.CodeRedemptionFactory()
    use.code.refresh_from_db()
    assert use.status == "applied" and use.code.uses == 1 and use.discount > 0
    bonus = f.CodeRedemptionFactory(code=f.CodeFactory(campaign=f.CampaignFactory(kind="bonus_points", value=25)))
    assert bonus.bonus_points == 25 and balance(bonus.member) == 25
    assert verify_ledger().ok


@pytest.mark.django_db
def test_redemption_award_and_rollback_keep_the_ledger_consistent():
    reward = f.RewardFactory(points=120, stock=5)
    redemption = f.RedemptionFactory(reward=reward)
    assert redemption.points_spent == 120 and balance(redemption.member) == 0
    award = f.AwardFactory(reward=reward)
    assert award.kind == "award" and award.points_spent == 0
    rollback = f.RollbackFactory(redemption=redemption)
    assert rollback.status == "executed" and rollback.points_returned == 120
    assert balance(redemption.member) == 120
    assert PointBalance.objects.filter(member=redemption.member).count() == 1
    assert verify_ledger().ok


@pytest.mark.django_db
def test_retro_claim_switches_retro_on_and_previews_by_the_rules():
    f.RuleSetFactory()
    claim = f.RetroClaimFactory()
    assert claim.status == "submitted" and claim.preview_points == 10
    assert claim.requested_by.groups.filter(name=roles.SUPPORT_AGENT).exists()
    assert f.ProgramSettingsFactory().retro_enabled
