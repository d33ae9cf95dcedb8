"""A real Celery worker process, on a real Redis broker, against the real PostgreSQL test database."""

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from config.tasks import enqueue_on_commit
from loyalty import services, tasks
from loyalty.models import LedgerEntry, Metric, PointBalance, PointLot
from tests.conftest import redis_url, require_postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker():
    """Start `celery worker` on a private queue, pointed at this test database; stop it afterwards."""
    require_postgres()  # the worker is another process: it cannot see SQLite's in-memory test DB
    url = redis_url()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": url,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "-Q",
            queue,
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sender = Celery(broker=url)
    try:
        yield sender, queue
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        print(out[-4000:])
        sender.close()


def wait_for(predicate, timeout=45.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.redis
@pytest.mark.real_worker
@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_the_expiry_task_end_to_end(worker):
    sender, queue = worker
    metric = Metric.objects.create(code="points", name="Points")
    member = services.enroll_member(external_id="w-1")
    past = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    services.credit_points(member=member, metric=metric, amount=70, expires_at=past)
    services.credit_points(member=member, metric=metric, amount=30, never_expires=True)

    sender.send_task("loyalty.tasks.expire_points", queue=queue)

    assert wait_for(lambda: LedgerEntry.objects.filter(kind="expiry").exists()), "the worker never ran the task"
    assert LedgerEntry.objects.get(kind="expiry").amount == -70
    assert PointBalance.objects.get(member=member).balance == 30
    assert PointLot.objects.filter(remaining__gt=0).count() == 1


@pytest.mark.django_db
def test_tasks_are_enqueued_only_after_commit(django_capture_on_commit_callbacks, member, metric):
    services.credit_points(member=member, metric=metric, amount=5, expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue_on_commit(tasks.expire_points)
    assert not LedgerEntry.objects.filter(kind="expiry").exists()  # nothing ran inside the transaction
    assert len(callbacks) == 1
    callbacks[0]()
    assert LedgerEntry.objects.filter(kind="expiry").count() == 1
