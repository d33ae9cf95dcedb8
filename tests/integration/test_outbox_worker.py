"""The outbox with a real worker on Redis and PostgreSQL: nothing lost, nothing doubled.

- The whole worker SIGKILLed during a run of retro claims and during a 200,000-code batch, then
  restarted: the sweep hands the stalled work to the new worker (the broker itself would only give
  the unacknowledged message back after its one-hour visibility timeout). Every claim is processed
  exactly once; the batch has exactly the requested number of codes.
- Every message delivered twice: processed once. A transaction that rolls back sends nothing.
- The broker down during an approval: 200, and once a worker and beat run, processed within 60 s.
"""

import datetime as dt
from decimal import Decimal

import psycopg
import pytest
import time_machine
from django.db import connection

from loyalty import outbox, roles
from loyalty import services as loyalty
from loyalty.kernel import SYSTEM, unit_of_work
from loyalty.models import LedgerEntry, Metric, OutboxMessage, PointBalance, ProgramSettings, Tier
from promotions import services as promotions
from promotions.models import Code, CodeBatch
from retro import services as retro
from retro.models import RetroClaim
from tests.helpers import BASE, DEAD_BROKER, FIXED, api_client_for, make_user
from tests.integration.helpers import publish_to, run_beat, run_worker, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.real_worker, pytest.mark.postgres]

SHORT_RUN_LEASE = {"OUTBOX_RUN_LEASE_SECONDS": "3"}  # a dead worker's run is handed out 3 s later


def retro_claims(n: int):
    """``n`` filed claims (one bill each, 45 points by the rules of the purchase date) and an approver."""
    ProgramSettings.objects.update_or_create(
        pk=1, defaults={"retro_enabled": True, "retro_window_days": 3650, "retro_max_claims_per_30_days": 1000}
    )
    Metric.objects.create(code="points", name="Points")
    Tier.objects.create(code="BRONZE", name="Bronze", rank=1)
    admin = make_user("boss", superuser=True)
    filer, approver = make_user("filer", roles.SUPPORT_AGENT), make_user("approver", roles.APPROVER)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        rules = loyalty.create_rule_set(name="Base", valid_from=start, actor=admin, rules=[{**FIXED, "points": 45}])
        loyalty.publish_rule_set(rule_set=rules, actor=admin)
        member = loyalty.enroll_member(external_id="K-1", actor=SYSTEM)
    claims = []
    for i in range(n):
        txn = loyalty.record_transaction(
            external_id=f"BILL-{i}",
            occurred_at=start + dt.timedelta(days=1),
            amount=Decimal("10.00"),
            currency="EUR",
            actor=SYSTEM,
        )
        claims.append(retro.submit_retro_claim(transaction_=txn, member=member, actor=filer))
    return approver, claims


def processed(claims) -> int:
    return RetroClaim.objects.filter(pk__in=[c.pk for c in claims], status="processed").count()


def assert_each_claim_credited_once(claims):
    assert processed(claims) == len(claims)
    for claim in claims:
        assert LedgerEntry.objects.filter(kind="retro", idempotency_key__startswith=f"retro:{claim.pk}:").count() == 1
    assert LedgerEntry.objects.filter(kind="retro").count() == len(claims)
    assert PointBalance.objects.get(member=claims[0].member).balance == 45 * len(claims)


def waiting_on_lock(table: str) -> int:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ILIKE %s",
            [f"%{table}%"],
        )
        return cur.fetchone()[0]


def sweeping(predicate):
    """What beat does every few seconds, here every second: sweep, then look."""

    def check():
        outbox.sweep()
        return predicate()

    return check


@pytest.mark.django_db(transaction=True)
def test_the_whole_worker_killed_during_retro_claims_every_claim_processed_exactly_once(postgres_only):
    approver, claims = retro_claims(8)
    db = connection.settings_dict
    blocker = psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"])
    try:
        # The first claim's task will hang mid-way, inside its transaction, on its bill's row lock.
        blocker.execute("SELECT id FROM loyalty_transaction WHERE id = %s FOR UPDATE", [claims[0].transaction_id])
        with run_worker(pool="prefork", concurrency=2, env=SHORT_RUN_LEASE) as first, publish_to(first.queue):
            for claim in claims:
                retro.approve_retro_claim(claim=claim, actor=approver)  # published on commit
            assert wait_for(lambda: processed(claims) == len(claims) - 1 and waiting_on_lock("loyalty_transaction"))
            first.kill()  # SIGKILL, main process and children: no ack, no requeue
        queue = first.queue
    finally:
        blocker.close()
    stalled = OutboxMessage.objects.get(args=[claims[0].pk])
    assert stalled.status == "running" and processed(claims) == len(claims) - 1
    # Redis keeps the unacknowledged message for its visibility timeout (an hour); the sweep does not wait.
    with run_worker(pool="prefork", concurrency=2, queue=queue) as second, publish_to(second.queue):
        assert wait_for(sweeping(lambda: processed(claims) == len(claims)), timeout=60, interval=1)
    assert_each_claim_credited_once(claims)
    stalled.refresh_from_db()
    assert stalled.status == "done" and stalled.attempts == 2 and stalled.publish_count >= 2
    assert set(
        OutboxMessage.objects.filter(name="retro.tasks.process_retro_claim").values_list("status", flat=True)
    ) == {"done"}


@pytest.mark.django_db(transaction=True)
def test_the_whole_worker_killed_during_a_200000_code_batch_makes_exactly_200000_codes(postgres_only, metric):
    manager = make_user("cm", roles.CAMPAIGN_MANAGER)
    campaign = promotions.create_campaign(actor=manager, name="Big", kind="percent_discount", value=10)

    def generated():
        return CodeBatch.objects.values_list("generated", flat=True).get()

    with run_worker(env={"OUTBOX_RUN_LEASE_SECONDS": "5"}) as first, publish_to(first.queue):
        promotions.create_code_batch(campaign=campaign, actor=manager, count=200_000, length=12)
        assert wait_for(lambda: generated() > 0, timeout=60, interval=0.05)  # a chunk committed
        first.kill()
    at_kill = generated()
    assert 0 < at_kill < 200_000 and CodeBatch.objects.get().status == "running"
    message = OutboxMessage.objects.get(name="promotions.tasks.generate_code_batch")
    assert message.status == "running"
    with (
        run_worker(queue=first.queue, env={"OUTBOX_RUN_LEASE_SECONDS": "5"}) as second,
        publish_to(second.queue),
    ):
        assert wait_for(sweeping(lambda: CodeBatch.objects.get().status == "completed"), timeout=120, interval=1)
    batch = CodeBatch.objects.get()
    assert batch.generated == 200_000 and Code.objects.filter(batch=batch).count() == 200_000
    message.refresh_from_db()
    assert message.status == "done" and message.attempts >= 2
    print(f"killed at {at_kill} codes; message published {message.publish_count}x, run {message.attempts}x")


@pytest.mark.django_db(transaction=True)
def test_every_message_delivered_twice_is_processed_once_and_a_rolled_back_one_never(postgres_only):
    approver, claims = retro_claims(5)
    doubled, sentinel, rolled_back = claims[:3], claims[3], claims[4]
    with run_worker() as worker, publish_to(worker.queue):  # solo: messages run in order
        for claim in doubled:
            retro.approve_retro_claim(claim=claim, actor=approver)
            message = OutboxMessage.objects.get(args=[claim.pk])
            worker.send(message.name, *message.args, headers={outbox.HEADER: message.pk})  # its twin
            worker.send(message.name, claim.pk)  # and a plain re-run, as `celery call` would send
        with pytest.raises(RuntimeError), unit_of_work("a request that fails after the approval"):
            retro.approve_retro_claim(claim=rolled_back, actor=approver)
            raise RuntimeError("the request failed after the approval")
        retro.approve_retro_claim(claim=sentinel, actor=approver)
        assert wait_for(lambda: processed([sentinel]) == 1)  # everything sent before it has run
    assert_each_claim_credited_once([*doubled, sentinel])
    rolled_back.refresh_from_db()
    assert rolled_back.status == "submitted"
    assert not OutboxMessage.objects.filter(args=[rolled_back.pk]).exists()


@pytest.mark.django_db(transaction=True)
def test_a_retro_approval_with_the_broker_down_answers_200_and_runs_once_the_broker_is_back(
    postgres_only, broker, tmp_path
):
    approver, claims = retro_claims(1)
    claim = claims[0]
    broker(DEAD_BROKER)
    client = api_client_for(approver)
    answer = client.post(f"{BASE}/retro-claims/{claim.pk}/approve", HTTP_IDEMPOTENCY_KEY="approve-1")
    assert answer.status_code == 200, answer.content
    assert (
        client.post(f"{BASE}/retro-claims/{claim.pk}/approve", HTTP_IDEMPOTENCY_KEY="approve-1")["Idempotent-Replayed"]
        == "true"
    )
    message = OutboxMessage.objects.get()
    assert message.status == "pending" and "Publish failed" in message.last_error
    claim.refresh_from_db()
    assert claim.status == "approved"
    # The broker is back (Redis was always up; the API was pointed elsewhere): a worker and beat run
    # as the README says, beat sweeping every second here (every 5 s by default).
    broker.restore()
    with (
        run_worker() as worker,
        run_beat(worker.queue, tmp_path, env={"OUTBOX_SWEEP_SECONDS": "1"}),
    ):
        assert wait_for(lambda: processed([claim]) == 1, timeout=60, interval=0.5)
    assert_each_claim_credited_once([claim])
    message.refresh_from_db()
    assert message.status == "done" and message.attempts == 1
