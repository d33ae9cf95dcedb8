"""A real Celery worker process, on a real Redis broker, against the real PostgreSQL test database."""

import datetime as dt

import pytest

from loyalty import services
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, Metric, PointBalance, PointLot
from tests.integration.helpers import wait_for


@pytest.mark.redis
@pytest.mark.real_worker
@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_the_expiry_task_end_to_end(worker):
    metric = Metric.objects.create(code="points", name="Points")
    member = services.enroll_member(external_id="w-1", actor=SYSTEM)
    past = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    services.credit_points(member=member, metric=metric, amount=70, expires_at=past, actor=SYSTEM)
    services.credit_points(member=member, metric=metric, amount=30, never_expires=True, actor=SYSTEM)

    worker.send("loyalty.tasks.expire_points")

    assert wait_for(lambda: LedgerEntry.objects.filter(kind="expiry").exists()), "the worker never ran the task"
    assert LedgerEntry.objects.get(kind="expiry").amount == -70
    assert PointBalance.objects.get(member=member).balance == 30
    assert PointLot.objects.filter(remaining__gt=0).count() == 1
