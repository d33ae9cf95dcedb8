"""Per-member limits under real concurrency on PostgreSQL: the count and the write that follows are
serialized on the member's row, so concurrent requests cannot all slip under the limit."""

import datetime as dt
from decimal import Decimal

import pytest

from loyalty import roles
from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import Metric, ProgramSettings, Reward, Tier
from loyalty.selectors import verify_ledger
from redemptions import services as redemptions
from redemptions.models import Rollback
from retro import services as retro
from retro.models import RetroClaim
from tests.helpers import make_user
from tests.integration.helpers import hammer

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("postgres_only")]


@pytest.mark.django_db(transaction=True)
def test_twelve_concurrent_retro_claims_of_one_member_with_a_limit_of_three():
    Tier.objects.create(code="BRONZE", name="Bronze", rank=1)
    program = ProgramSettings.load()
    program.retro_enabled = True
    program.retro_max_claims_per_30_days = 3
    program.save()
    agent = make_user("agent", roles.SUPPORT_AGENT)
    member = loyalty.enroll_member(external_id="ONE", enrolled_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), actor=SYSTEM)
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    bills = [
        loyalty.record_transaction(
            external_id=f"B{i}", occurred_at=when, amount=Decimal("20.00"), currency="EUR", actor=SYSTEM
        )
        for i in range(12)
    ]
    outcomes = hammer(12, lambda i: retro.submit_retro_claim(transaction_=bills[i], member=member, actor=agent))
    assert outcomes.count("ok") == 3, outcomes
    assert outcomes.count("limit_reached") == 9, outcomes
    assert RetroClaim.objects.filter(member=member).count() == 3


@pytest.mark.django_db(transaction=True)
def test_twelve_concurrent_rollbacks_of_one_member_over_twelve_metrics_respect_the_per_member_limit():
    """Each redemption spent another metric, so no balance row serializes them: only the member row."""
    Tier.objects.create(code="BRONZE", name="Bronze", rank=1)
    program = ProgramSettings.load()
    program.rollback_max_per_member_30_days = 3
    program.save()
    agent = make_user("agent", roles.SUPPORT_AGENT)
    member = loyalty.enroll_member(external_id="ONE", actor=SYSTEM)
    reds = []
    for i in range(12):
        metric = Metric.objects.create(code=f"m{i}", name=f"Metric {i}")
        loyalty.credit_points(member=member, metric=metric, amount=10, actor=SYSTEM)
        reward = Reward.objects.create(
            external_id=f"R{i}", name="Mug", type="physical_product", metric=metric, points=10
        )
        reds.append(redemptions.redeem_reward(member=member, reward=reward, actor=agent))
    outcomes = hammer(
        12, lambda i: redemptions.rollback_redemption(redemption=reds[i], reason="customer_request", actor=agent)
    )
    assert outcomes == ["ok"] * 12, outcomes
    statuses = sorted(Rollback.objects.values_list("status", flat=True))
    assert statuses.count("executed") == 3, statuses
    assert statuses.count("pending_approval") == 9, statuses
    assert verify_ledger().ok
