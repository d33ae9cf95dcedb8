"""A queue on the operations home counts exactly the rows its link lists: one selector serves both."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from loyalty.insight import registered_queues
from loyalty.models import OutboxMessage, Reward
from redemptions import services as redemptions

pytestmark = pytest.mark.django_db


def test_every_queue_counts_what_its_admin_page_lists(figures, admin_user, metric, support_user):
    careful = Reward.objects.create(
        external_id="WATCH", name="Watch", type=Reward.Type.BADGE, metric=metric, points=10, requires_approval=True
    )
    redemptions.redeem_reward(member=figures["bob"], reward=careful, actor=support_user)
    by_key = {q.key: q for q in registered_queues()}
    stuck_before = by_key["stuck_outbox"].stats().count  # the history's own messages, due since March
    long_ago = timezone.now() - dt.timedelta(hours=1)
    OutboxMessage.objects.create(name="t.failed", status=OutboxMessage.Status.FAILED)
    OutboxMessage.objects.create(name="t.late", available_at=long_ago)  # should have run 50 minutes ago
    OutboxMessage.objects.create(name="t.lease", status=OutboxMessage.Status.RUNNING, lease_until=long_ago)
    OutboxMessage.objects.create(name="t.fresh")  # due now: not stuck yet
    OutboxMessage.objects.create(name="t.done", status=OutboxMessage.Status.DONE, lease_until=long_ago)

    client = Client()
    client.force_login(admin_user)
    counted = {}
    for queue in registered_queues():
        page = client.get(queue.url())
        assert page.status_code == 200, queue.key
        listed = page.context["cl"].queryset.count()
        counted[queue.key] = queue.stats().count
        assert counted[queue.key] == listed, queue.key
    assert counted["stuck_outbox"] - stuck_before == 3  # failed, late, and a lease that ran out 50 minutes ago
    assert counted["redemption_approvals"] == 1 and counted["rollback_approvals"] == 1
    assert {"retro_claims", "failed_deliveries"} <= counted.keys()


def test_a_queue_is_seen_with_the_models_view_permission_and_worked_with_its_verb():
    by_key = {q.key: q for q in registered_queues()}
    assert by_key["rollback_approvals"].view_perms == ("redemptions.view_rollback",)
    assert by_key["rollback_approvals"].act_perms == ("redemptions.approve_rollback",)
    assert by_key["retro_claims"].act_perms == ("retro.approve_retroclaim",)
    assert by_key["stuck_outbox"].act_perms == ("loyalty.resend_outboxmessage",)
    assert by_key["failed_deliveries"].act_perms == ("loyalty.replay_webhookdelivery",)
