"""The broker down during requests (this process pointed at a port where nothing listens).

Work that commits answers its normal 2xx, a retry with the same Idempotency-Key replays that answer
and does nothing twice, and the side effects wait in the outbox until the sweep can publish them.
(These used to be three 500s and three rollbacks, two batches for one request, and an approval
stuck in ``approved`` forever.) With a real worker and Redis coming back:
tests/integration/test_outbox_worker.py.
"""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.core import mail

from loyalty import outbox, roles
from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, OutboxMessage, PointBalance, ProgramSettings, Reward
from promotions import services as promotions
from promotions.models import Code, CodeBatch
from redemptions.models import Rollback
from retro import services as retro
from tests.helpers import BASE, DEAD_BROKER, FIXED, api_client_for, make_user


@pytest.fixture
def committing(django_capture_on_commit_callbacks):
    """Each request's on_commit hooks run, as after a real commit (the test's transaction stays open)."""

    def post(client, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(*args, **kwargs)

    return post


def pending(name):
    return list(OutboxMessage.objects.filter(name=name).values_list("status", "publish_count"))


@pytest.mark.django_db
def test_partial_rollback_three_times_with_one_key_rolls_back_once(api, member, metric, broker, committing):
    loyalty.credit_points(member=member, metric=metric, amount=1000, reason="opening", actor=SYSTEM)
    Reward.objects.create(external_id="R-1", name="Tote", type="physical_product", metric=metric, points=100)
    redemption = api.post(f"{BASE}/redemptions/", {"member": "M-1", "reward": "R-1"}, format="json").json()
    broker(DEAD_BROKER)
    url = f"{BASE}/redemptions/{redemption['id']}/rollback"
    body = {"reason": "customer_request", "points": 30}
    answers = [committing(api, url, body, format="json", HTTP_IDEMPOTENCY_KEY="rb-down") for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201], answers[0].content
    assert [a.get("Idempotent-Replayed") for a in answers] == [None, "true", "true"]
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert Rollback.objects.count() == 1 and answers[0].json()["points_returned"] == 30
    assert PointBalance.objects.get(member=member).balance == 930
    assert pending("loyalty.tasks.send_notification") == [("pending", 0)]  # the email waits for the broker
    assert "Publish failed" in OutboxMessage.objects.get().last_error
    assert mail.outbox == []
    broker.inline()  # the broker is back: the sweep sends the email, once
    outbox.sweep()
    outbox.sweep()
    assert len(mail.outbox) == 1 and pending("loyalty.tasks.send_notification") == [("done", 1)]


@pytest.mark.django_db
def test_a_code_batch_requested_twice_with_one_key_is_one_batch(metric, broker, committing):
    manager = make_user("cm", roles.CAMPAIGN_MANAGER)
    campaign = promotions.create_campaign(actor=manager, name="Spring", kind="percent_discount", value=10)
    client = api_client_for(manager)
    broker(DEAD_BROKER)
    url = f"{BASE}/campaigns/{campaign.pk}/code-batches/"
    first = committing(client, url, {"count": 1000}, format="json", HTTP_IDEMPOTENCY_KEY="batch-down")
    again = committing(client, url, {"count": 1000}, format="json", HTTP_IDEMPOTENCY_KEY="batch-down")
    assert (first.status_code, again.status_code) == (202, 202) and again["Idempotent-Replayed"] == "true"
    assert CodeBatch.objects.count() == 1 and CodeBatch.objects.get().status == "pending"
    assert pending("promotions.tasks.generate_code_batch") == [("pending", 0)]

    broker.inline()  # the broker is back; beat's sweep generates the one batch
    outbox.sweep()
    assert Code.objects.count() == 1000 and CodeBatch.objects.get().status == "completed"
    assert pending("promotions.tasks.generate_code_batch") == [("done", 1)]


@pytest.mark.django_db
def test_a_retro_approval_answers_200_and_is_processed_once_the_sweep_can_publish(metric, tiers, broker, committing):
    ProgramSettings.objects.update_or_create(pk=1, defaults={"retro_enabled": True, "retro_window_days": 3650})
    admin = make_user("boss", superuser=True)
    filer, approver = make_user("filer", roles.SUPPORT_AGENT), make_user("approver", roles.APPROVER)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        rules = loyalty.create_rule_set(name="Base", valid_from=start, actor=admin, rules=[{**FIXED, "points": 45}])
        loyalty.publish_rule_set(rule_set=rules, actor=admin)
        member = loyalty.enroll_member(external_id="K-1", actor=SYSTEM)
    txn = loyalty.record_transaction(
        external_id="BILL-1",
        occurred_at=start + dt.timedelta(days=1),
        amount=Decimal("10.00"),
        currency="EUR",
        actor=SYSTEM,
    )
    claim = retro.submit_retro_claim(transaction_=txn, member=member, actor=filer)
    broker(DEAD_BROKER)
    client = api_client_for(approver)
    answers = [
        committing(client, f"{BASE}/retro-claims/{claim.pk}/approve", HTTP_IDEMPOTENCY_KEY="approve-down")
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 200] and answers[1]["Idempotent-Replayed"] == "true"
    claim.refresh_from_db()
    assert claim.status == "approved"
    assert pending("retro.tasks.process_retro_claim") == [("pending", 0)]
    outbox.sweep()  # beat, broker still down: nothing lost, nothing raised
    assert pending("retro.tasks.process_retro_claim") == [("pending", 0)]

    broker.inline()  # the broker is back
    outbox.sweep()
    claim.refresh_from_db()
    assert claim.status == "processed" and LedgerEntry.objects.filter(kind="retro").count() == 1
