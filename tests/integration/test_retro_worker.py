"""Retro processing on a real worker: a worker process killed mid-task must not lose or double the credit."""

import datetime as dt
import os
import signal
from decimal import Decimal

import psycopg
import pytest
import time_machine
from django.db import connection

from loyalty import roles, services
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, Metric, PointBalance, ProgramSettings, Tier
from retro import services as retro
from retro.models import RetroClaim
from tests.helpers import make_user
from tests.integration.helpers import run_worker, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.real_worker, pytest.mark.postgres]


def approved_claim(django_capture_on_commit_callbacks) -> RetroClaim:
    ProgramSettings.objects.update_or_create(pk=1, defaults={"retro_enabled": True, "retro_window_days": 3650})
    Metric.objects.create(code="points", name="Points")
    Tier.objects.create(code="BRONZE", name="Bronze", rank=1)
    admin = make_user("boss", superuser=True)
    filer = make_user("filer", roles.SUPPORT_AGENT)
    approver = make_user("approver", roles.APPROVER)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        rules = services.create_rule_set(
            name="Base",
            valid_from=start,
            actor=admin,
            rules=[{"name": "Visit", "metric": "points", "action": "fixed", "points": 45}],
        )
        services.publish_rule_set(rule_set=rules, actor=admin)
        member = services.enroll_member(external_id="K-1", actor=SYSTEM)
    txn = services.record_transaction(
        external_id="KILL-1",
        occurred_at=start + dt.timedelta(days=1),
        amount=Decimal("10.00"),
        currency="EUR",
        actor=SYSTEM,
    )
    claim = retro.submit_retro_claim(transaction_=txn, member=member, actor=filer)
    with django_capture_on_commit_callbacks(execute=False):  # the test sends the task to its own worker
        retro.approve_retro_claim(claim=claim, actor=approver)
    return claim


def waiting_on_claim_lock() -> list[int]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ILIKE '%%retro_retroclaim%%'"
        )
        return [row[0] for row in cur.fetchall()]


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_task_is_redelivered_and_credits_exactly_once(
    postgres_only, django_capture_on_commit_callbacks
):
    claim = approved_claim(django_capture_on_commit_callbacks)
    db = connection.settings_dict
    blocker = psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"])
    try:
        # Hold the claim's row lock so the task blocks mid-way, inside its transaction.
        blocker.execute("SELECT id FROM retro_retroclaim WHERE id = %s FOR UPDATE", [claim.pk])
        with run_worker(pool="prefork", concurrency=1) as worker:
            worker.send("retro.tasks.process_retro_claim", claim.pk)
            assert wait_for(lambda: len(waiting_on_claim_lock()) == 1), "the task never started"
            first_backend = waiting_on_claim_lock()[0]
            [child] = worker.children()
            os.kill(child, signal.SIGKILL)  # the worker process dies mid-task
            # task_reject_on_worker_lost requeues the message; a fresh child picks it up and blocks again
            assert wait_for(lambda: any(pid != first_backend for pid in waiting_on_claim_lock()), timeout=60), (
                "the task was not redelivered after the worker process died"
            )
            blocker.rollback()  # let it through
            assert wait_for(lambda: RetroClaim.objects.get(pk=claim.pk).status == "processed")
    finally:
        blocker.close()
    assert LedgerEntry.objects.filter(kind="retro").count() == 1
    assert PointBalance.objects.get(member=claim.member).balance == 45
