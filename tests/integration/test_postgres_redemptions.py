"""Concurrent redemptions on the real PostgreSQL: stock and balances hold."""

import pytest

from loyalty import roles
from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import Metric, PointBalance, Reward, Tier
from loyalty.selectors import verify_ledger
from redemptions import services
from redemptions.models import Redemption
from tests.helpers import make_user
from tests.integration.helpers import hammer

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("postgres_only")]


@pytest.fixture
def world(transactional_db):
    metric = Metric.objects.create(code="points", name="Points")
    Tier.objects.create(code="BRONZE", name="Bronze", rank=1)
    return metric, make_user("agent", roles.SUPPORT_AGENT)


def test_twenty_concurrent_redemptions_of_stock_five_exactly_five_succeed(world):
    metric, agent = world
    reward = Reward.objects.create(
        external_id="R", name="Mug", type="physical_product", metric=metric, points=10, stock=5
    )
    members = [loyalty.enroll_member(external_id=f"M{i}", actor=SYSTEM) for i in range(20)]
    for m in members:
        loyalty.credit_points(member=m, metric=metric, amount=10, actor=SYSTEM)
    outcomes = hammer(20, lambda i: services.redeem_reward(member=members[i], reward=reward, actor=agent))
    assert outcomes.count("ok") == 5, outcomes
    assert outcomes.count("out_of_stock") == 15
    assert Reward.objects.get(pk=reward.pk).stock == 0
    assert Redemption.objects.count() == 5
    assert verify_ledger().ok


def test_concurrent_redemptions_beyond_the_balance_never_overdraw(world):
    metric, agent = world
    reward = Reward.objects.create(external_id="R", name="Mug", type="physical_product", metric=metric, points=30)
    member = loyalty.enroll_member(external_id="ONE", actor=SYSTEM)
    loyalty.credit_points(member=member, metric=metric, amount=100, actor=SYSTEM)
    outcomes = hammer(12, lambda i: services.redeem_reward(member=member, reward=reward, actor=agent))
    assert outcomes.count("ok") == 3, outcomes
    assert outcomes.count("insufficient_points") == 9
    assert PointBalance.objects.get(member=member).balance == 10
    assert verify_ledger().ok


def test_concurrent_rollbacks_of_one_redemption_never_return_more_than_spent(world):
    metric, agent = world
    reward = Reward.objects.create(external_id="R", name="Mug", type="physical_product", metric=metric, points=100)
    member = loyalty.enroll_member(external_id="RB", actor=SYSTEM)
    loyalty.credit_points(member=member, metric=metric, amount=100, actor=SYSTEM)
    redemption = services.redeem_reward(member=member, reward=reward, actor=agent)
    outcomes = hammer(
        10,
        lambda i: services.rollback_redemption(
            redemption=redemption, reason="customer_request", points=30, actor=agent
        ),
    )
    assert outcomes.count("ok") == 3, outcomes
    assert outcomes.count("exceeds_spent") == 7
    redemption.refresh_from_db()
    assert redemption.points_returned == 90
    assert PointBalance.objects.get(member=member).balance == 90
    assert verify_ledger().ok
