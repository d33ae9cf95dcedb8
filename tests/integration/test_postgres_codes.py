"""Concurrent redemptions on the real PostgreSQL: limits and budgets hold under 50 threads."""

from decimal import Decimal

import pytest

from loyalty import roles
from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import Metric, Tier
from promotions import services
from promotions.models import Campaign, Code, CodeRedemption
from tests.helpers import make_user
from tests.integration.helpers import hammer

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("postgres_only")]


def first_reason(exc: Exception) -> str:
    """A refused redemption counts as its first code's reason; any other failure shows up in the assertion."""
    if isinstance(exc, services.CodesRejected):
        return exc.errors["codes"][0]["reason"] or "rejected"
    return f"error: {exc!r}"


@pytest.fixture
def world(transactional_db):
    Metric.objects.create(code="points", name="Points")
    Tier.objects.create(code="BRONZE", name="Bronze", rank=1)
    manager = make_user("cm", roles.CAMPAIGN_MANAGER)
    members = [loyalty.enroll_member(external_id=f"M{i}", actor=SYSTEM) for i in range(50)]
    return manager, members


def active_campaign(manager, **fields):
    campaign = services.create_campaign(actor=manager, name="Race", kind="fixed_discount", value=5, **fields)
    return services.change_campaign_status(campaign=campaign, status="active", actor=manager)


def redeem(manager, member, code):
    services.redeem_codes(
        services.clean_request(codes=[code], member=member, order={"amount": "50"}, client=f"c{member.pk}"),
        actor=manager,
    )


def test_fifty_threads_one_single_use_code_exactly_one_wins(world):
    manager, members = world
    services.create_named_code(campaign=active_campaign(manager), code="ONLY1", actor=manager)
    outcomes = hammer(50, lambda i: redeem(manager, members[i], "ONLY1"), outcome=first_reason)
    assert outcomes.count("ok") == 1, outcomes
    assert outcomes.count("code_already_used") == 49
    assert Code.objects.get(normalized="ONLY1").uses == 1
    assert CodeRedemption.objects.count() == 1


def test_a_ten_use_code_under_fifty_threads_gives_exactly_ten(world):
    manager, members = world
    services.create_named_code(campaign=active_campaign(manager), code="TEN", actor=manager, max_uses=10)
    outcomes = hammer(50, lambda i: redeem(manager, members[i], "TEN"), outcome=first_reason)
    assert outcomes.count("ok") == 10, outcomes
    assert outcomes.count("code_already_used") == 40
    assert Code.objects.get(normalized="TEN").uses == 10


def test_the_campaign_budget_is_never_exceeded(world):
    manager, members = world
    campaign = active_campaign(manager, max_redemptions=7, max_discount_total=Decimal("30.00"))
    for i in range(50):
        services.create_named_code(campaign=campaign, code=f"BUDGET{i}", actor=manager)
    outcomes = hammer(50, lambda i: redeem(manager, members[i], f"BUDGET{i}"), outcome=first_reason)
    campaign.refresh_from_db()
    assert outcomes.count("ok") == 6, outcomes  # 6 x 5.00 = 30.00; the 7th use would exceed the money budget
    assert outcomes.count("budget_exhausted") == 44
    assert (campaign.redemptions_count, campaign.discount_total) == (6, Decimal("30.00"))


def test_per_member_limit_holds_under_concurrency(world):
    manager, members = world
    campaign = active_campaign(manager, per_member_limit=2)
    for i in range(20):
        services.create_named_code(campaign=campaign, code=f"PM{i}", actor=manager)
    outcomes = hammer(20, lambda i: redeem(manager, members[0], f"PM{i}"), outcome=first_reason)
    assert outcomes.count("ok") == 2, outcomes
    assert Campaign.objects.get(pk=campaign.pk).redemptions_count == 2
