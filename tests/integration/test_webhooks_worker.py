"""Webhooks with a real worker on Redis and PostgreSQL, to a real HTTP receiver in a thread.

- Events committed here are delivered by the worker from its webhook queue, signed.
- The receiver down for a minute, then up again (on the same port): every event is delivered,
  none is lost or failed. The backoff is shortened (1 s doubling to 4 s) and beat runs
  ``deliver-webhooks`` every second, so the test stays bounded (about 70 s).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from loyalty import services as loyalty
from loyalty.events import webhooks
from loyalty.kernel import SYSTEM
from loyalty.models import Event, WebhookDelivery
from tests.helpers import make_user
from tests.integration.helpers import publish_to, run_beat, run_worker, wait_for
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.redis, pytest.mark.real_worker, pytest.mark.postgres]

SHORT_BACKOFF = {
    "WEBHOOK_BACKOFF_SECONDS": "1",
    "WEBHOOK_MAX_BACKOFF_SECONDS": "4",
    "WEBHOOK_BEAT_SECONDS": "1",
    "OUTBOX_SWEEP_SECONDS": "1",
}


def new_queue() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def delivered() -> int:
    return WebhookDelivery.objects.filter(status="delivered").count()


def emit_enrolments(n: int) -> list[int]:
    ids = []
    for i in range(n):
        # Committed (the test's database is real here): its member.enrolled goes out after the commit.
        member = loyalty.enroll_member(external_id=f"W-{i}", email=f"w{i}@example.com", actor=SYSTEM)
        ids.append(Event.objects.get(type="member.enrolled", member=member).pk)
    return ids


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_signed_events_to_a_local_receiver(postgres_only, tiers, settings):
    boss = make_user("boss", superuser=True)
    with Receiver() as receiver:
        _, secret = webhooks.create_subscription(url=receiver.url, events=["*"], actor=boss)
        queue = new_queue()
        with run_worker(pool="prefork", concurrency=2, queue=queue, env={"WEBHOOK_QUEUE": queue}) as worker:
            settings.WEBHOOK_QUEUE = queue
            with publish_to(worker.queue):
                ids = emit_enrolments(5)
                assert wait_for(lambda: delivered() == 5, timeout=60)
    assert sorted(int(r.headers["Loyalty-Event-Id"]) for r in receiver.received) == sorted(ids)
    for request in receiver.received:
        assert webhooks.verify(secret, request.headers["Loyalty-Signature"], request.body)
        assert json.loads(request.body)["id"] == int(request.headers["Loyalty-Event-Id"])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_receiver_down_for_a_minute_then_up_gets_every_event(postgres_only, tiers, settings, tmp_path):
    boss = make_user("boss", superuser=True)
    receiver = Receiver()
    port = receiver.port
    webhooks.create_subscription(url=receiver.url, events=["member.enrolled"], actor=boss)
    receiver.stop()  # down: connections to its port are refused
    down_at = time.monotonic()
    queue = new_queue()
    env = {**SHORT_BACKOFF, "WEBHOOK_QUEUE": queue}
    settings.WEBHOOK_QUEUE = queue
    try:
        with (
            run_worker(pool="prefork", concurrency=2, queue=queue, env=env) as worker,
            publish_to(worker.queue),
            run_beat(worker.queue, tmp_path, env=env),
        ):
            ids = emit_enrolments(10)
            assert wait_for(
                lambda: WebhookDelivery.objects.filter(status="pending", attempts__gte=2).count() == 10,
                timeout=40,
            )
            time.sleep(max(0.0, 60 - (time.monotonic() - down_at)))  # the rest of the minute down
            assert delivered() == 0 and not WebhookDelivery.objects.filter(status="failed").exists()
            receiver = Receiver(port=port)  # back up
            assert wait_for(lambda: delivered() == 10, timeout=30)
    finally:
        receiver.stop()
    assert {int(r.headers["Loyalty-Event-Id"]) for r in receiver.received} == set(ids)
    assert max(WebhookDelivery.objects.values_list("attempts", flat=True)) > 5  # it really retried all along
