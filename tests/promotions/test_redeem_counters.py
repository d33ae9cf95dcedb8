"""redeem_codes moves the campaign counters by conditional UPDATEs instead of locking the campaign
row first: when the campaign changed between the read and the UPDATE (another redemption took the
last of the budget, someone paused or edited it), the attempt is redone under the locks and the
answer is the one the changed campaign gives. Nothing half-written either way."""

from decimal import Decimal

import pytest
from django.db.models import F
from django.utils import timezone

from promotions import services
from promotions.models import Campaign, CampaignMemberUsage, Code, CodeRedemption
from promotions.services import redemption as redeem_module

pytestmark = pytest.mark.django_db


def req(codes, member=None, amount="100.00"):
    return services.clean_request(codes=codes, member=member, order={"amount": amount, "id": "o-1"}, client="pos")


@pytest.fixture
def meanwhile(monkeypatch):
    """Apply ``change`` right after the codes (and their campaigns) were read and locked, as a
    concurrent transaction that commits then would: at every attempt (a rolled-back attempt rolls
    back our own connection's writes, not another transaction's). Returns the attempts made."""

    def install(change):
        real = redeem_module._lock_codes
        attempts = []

        def lock_then_change(request):
            codes = real(request)
            attempts.append(1)
            change()
            return codes

        monkeypatch.setattr(redeem_module, "_lock_codes", lock_then_change)
        return attempts

    return install


def test_the_last_of_the_budget_taken_meanwhile_is_budget_exhausted_and_nothing_is_written(
    make_campaign, manager, member, meanwhile
):
    campaign = make_campaign(kind="fixed_discount", value=5, max_redemptions=3)
    services.create_named_code(campaign=campaign, code="LAST", actor=manager, max_uses=10)
    attempts = meanwhile(lambda: Campaign.objects.filter(pk=campaign.pk).update(redemptions_count=3))
    with pytest.raises(services.CodesRejected) as exc:
        services.redeem_codes(req(["LAST"], member), actor=manager)
    assert exc.value.errors["codes"][0]["reason"] == "budget_exhausted" and len(attempts) == 2
    code = Code.objects.get(normalized="LAST")
    assert code.uses == 0 and not CodeRedemption.objects.exists()
    assert not CampaignMemberUsage.objects.filter(uses__gt=0).exists()


def test_a_money_budget_is_never_overspent(make_campaign, manager, member, meanwhile):
    campaign = make_campaign(kind="fixed_discount", value=5, max_discount_total=Decimal("10.00"))
    services.create_named_code(campaign=campaign, code="MONEY", actor=manager, max_uses=10)
    meanwhile(lambda: Campaign.objects.filter(pk=campaign.pk).update(discount_total=Decimal("7.00")))
    with pytest.raises(services.CodesRejected) as exc:
        services.redeem_codes(req(["MONEY"], member), actor=manager)
    assert exc.value.errors["codes"][0]["reason"] == "budget_exhausted"
    assert not CodeRedemption.objects.exists()


def test_a_campaign_paused_meanwhile_refuses_the_code(make_campaign, manager, meanwhile):
    campaign = make_campaign(kind="fixed_discount", value=5)
    services.create_named_code(campaign=campaign, code="PAUSED", actor=manager)
    meanwhile(lambda: Campaign.objects.filter(pk=campaign.pk).update(status="paused", updated_at=timezone.now()))
    with pytest.raises(services.CodesRejected) as exc:
        services.redeem_codes(req(["PAUSED"]), actor=manager)
    assert exc.value.errors["codes"][0]["reason"] not in (None, "budget_exhausted")
    assert Code.objects.get(normalized="PAUSED").uses == 0 and not CodeRedemption.objects.exists()


def test_an_edited_value_is_applied_after_the_redo(make_campaign, manager, meanwhile):
    """The discount is computed from the campaign as it is when counted, never from a stale copy."""
    campaign = make_campaign(kind="fixed_discount", value=5)
    services.create_named_code(campaign=campaign, code="EDIT", actor=manager)
    attempts = meanwhile(
        lambda: Campaign.objects.filter(pk=campaign.pk).update(value=Decimal("7.00"), updated_at=timezone.now())
    )
    [use] = services.redeem_codes(req(["EDIT"]), actor=manager)
    assert len(attempts) == 2 and use.discount == Decimal("7.00")
    campaign.refresh_from_db()
    assert (campaign.redemptions_count, campaign.discount_total) == (1, Decimal("7.00"))


def test_the_per_member_limit_reached_meanwhile_is_limit_reached(make_campaign, manager, member, meanwhile):
    campaign = make_campaign(kind="fixed_discount", value=5, per_member_limit=1)
    services.create_named_code(campaign=campaign, code="ONEPER", actor=manager, max_uses=10)
    meanwhile(lambda: CampaignMemberUsage.objects.filter(campaign=campaign, member=member).update(uses=F("uses") + 1))
    with pytest.raises(services.CodesRejected) as exc:
        services.redeem_codes(req(["ONEPER"], member), actor=manager)
    assert exc.value.errors["codes"][0]["reason"] == "limit_reached"
    assert Campaign.objects.get(pk=campaign.pk).redemptions_count == 0


def test_two_codes_of_one_campaign_count_twice_in_one_update(make_campaign, manager):
    campaign = make_campaign(kind="fixed_discount", value=5, stacking="stackable", max_codes_per_order=2)
    services.create_named_code(campaign=campaign, code="ONE", actor=manager)
    services.create_named_code(campaign=campaign, code="TWO", actor=manager)
    uses = services.redeem_codes(req(["ONE", "TWO"]), actor=manager)
    campaign.refresh_from_db()
    assert len(uses) == 2 and (campaign.redemptions_count, campaign.discount_total) == (2, Decimal("10.00"))
