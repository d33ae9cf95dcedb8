"""Shared fixture of the insight tests: a small, hand-countable history (also used by
tests/browser/test_insight.py through ``make_history``)."""

from __future__ import annotations

import pytest
import time_machine

from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import Metric, Reward
from redemptions import services as redemptions
from tests.helpers import d


@pytest.fixture
def figures(member, metric, support_user, tiers):
    return make_history(member, metric, support_user)


def make_history(member, metric, support_user) -> dict:
    """Ann (points 1000, miles 300 expiring in 20 days) and Bob (points 500); three redemptions of
    100 points, one award, one executed rollback (customer request) and one waiting for approval
    (fraud needs a second person), a redemption on March 12th outside the range."""
    miles = Metric.objects.create(code="miles", name="Miles", expiry_days=20)
    ann = member
    badge = Reward.objects.create(external_id="B", name="Badge", type=Reward.Type.BADGE, metric=metric, points=100)
    with time_machine.travel(d(2026, 3, 1, 9), tick=False):
        bob = loyalty.enroll_member(external_id="M-2", email="bob@example.com", name="Bob Other", actor=SYSTEM)
        loyalty.credit_points(member=ann, metric=metric, amount=1000, reason="opening", actor=SYSTEM)
        loyalty.credit_points(member=bob, metric=metric, amount=500, reason="opening", actor=SYSTEM)
        loyalty.credit_points(member=ann, metric=miles, amount=300, reason="opening", actor=SYSTEM)
    with time_machine.travel(d(2026, 3, 2, 10), tick=False):
        first = redemptions.redeem_reward(member=ann, reward=badge, actor=support_user)
        second = redemptions.redeem_reward(member=ann, reward=badge, actor=support_user)
    with time_machine.travel(d(2026, 3, 3, 23, 30), tick=False):
        redemptions.redeem_reward(member=bob, reward=badge, actor=support_user)
        redemptions.award_reward(member=bob, reward=badge, actor=support_user, reason="apology")
    with time_machine.travel(d(2026, 3, 4, 8), tick=False):
        done = redemptions.rollback_redemption(redemption=first, reason="customer_request", actor=support_user)
        waiting = redemptions.rollback_redemption(redemption=second, reason="fraud", actor=support_user)
    assert done.status == "executed" and waiting.status == "pending_approval"
    with time_machine.travel(d(2026, 3, 12, 8), tick=False):
        redemptions.redeem_reward(member=bob, reward=badge, actor=support_user)
    return {"ann": ann, "bob": bob}
