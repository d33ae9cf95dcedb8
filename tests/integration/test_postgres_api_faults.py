"""API requests under races and faults, on the real PostgreSQL with real threads.

- 20 concurrent requests with one Idempotency-Key never answer 500 (they used to: 2-3 of 20 to an
  unknown member died with ``IdempotencyRecord.DoesNotExist``), and the operation happens once.
- The database connection killed mid-request (``pg_terminate_backend`` on the request's own
  backend): a clean 500 in the error shape, nothing half-written, and the key free for a retry.
- A request whose key is taken over by a retry while it runs rolls its own work back.
"""

import threading

import pytest
from django.db import connection, connections
from django.utils import timezone

from loyalty.models import IdempotencyRecord, LedgerEntry, PointBalance
from loyalty.services import core
from tests.helpers import BASE, api_client_for, assert_error

pytestmark = [pytest.mark.postgres]

BODY = {"metric": "points", "amount": 25, "reason": "Goodwill"}


def post_together(user, url, n=20, key="same-key"):
    """``n`` threads post the same body with the same key at the same moment; their responses."""
    barrier = threading.Barrier(n)
    responses, lock = [], threading.Lock()

    def run():
        client = api_client_for(user)
        try:
            barrier.wait()
            response = client.post(url, BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)
        finally:
            connections.close_all()
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return responses


def assert_clean(responses, allowed):
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= allowed, statuses
    for r in responses:
        if r.status_code >= 400:
            assert set(r.json()) == {"code", "detail", "errors"}, r.content
    return statuses


@pytest.mark.django_db(transaction=True)
def test_concurrent_keyed_requests_never_answer_500_and_act_once(postgres_only, integration_user, member, metric):
    # To an unknown member: the first answers 404 and frees the key while the others look it up.
    unknown = []
    for round_ in range(5):  # the race is narrow: give it a few chances
        unknown += post_together(integration_user, f"{BASE}/members/NOBODY/adjustments/", key=f"k-{round_}")
    assert_clean(unknown, {404, 409})
    assert {r.json()["code"] for r in unknown} <= {"not_found", "idempotency_request_in_progress"}
    assert not IdempotencyRecord.objects.exists()  # a 404 is not final: the key is free again

    # To a real operation: one adjustment, one answer (replayed), the rest told to wait.
    real = post_together(integration_user, f"{BASE}/members/{member.external_id}/adjustments/")
    statuses = assert_clean(real, {201, 409})
    assert 201 in statuses
    answers = [r.json() for r in real if r.status_code == 201]
    assert all(a == answers[0] for a in answers)
    assert LedgerEntry.objects.count() == 1
    assert PointBalance.objects.get(member=member).balance == 25


@pytest.mark.django_db(transaction=True)
def test_the_connection_killed_mid_request_is_a_clean_500_and_writes_nothing(postgres_only, api, member, metric):
    real = core._insert_entry

    def insert_then_lose_the_connection(**fields):
        real(**fields)  # the ledger entry is written in the open transaction...
        with connection.cursor() as cur:  # ...and then the database drops this very connection
            cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    url = f"{BASE}/members/{member.external_id}/adjustments/"
    for key in (None, "k-killed"):  # the service's own transaction; the Idempotency-Key's around it
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        core._insert_entry = insert_then_lose_the_connection
        try:
            response = api.post(url, BODY, format="json", **headers)
        finally:
            core._insert_entry = real
        assert_error(response, 500, "server_error")
        assert not LedgerEntry.objects.exists()
        assert not PointBalance.objects.filter(member=member, balance__gt=0).exists()
        assert not IdempotencyRecord.objects.exists()
    retry = api.post(url, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-killed")
    assert retry.status_code == 201, retry.content
    assert LedgerEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_request_whose_key_was_taken_over_meanwhile_rolls_its_work_back(
    postgres_only, api, member, metric, monkeypatch
):
    """Its lease ran out while it worked and a retry took the key: the retry does the work, not both."""
    real = core.adjust_points

    def slow_adjust(**kwargs):
        entry = real(**kwargs)

        def retry_takes_over():  # another request, on its own connection, after the lease
            IdempotencyRecord.objects.update(lock_token="the-retry", locked_until=timezone.now())
            connections.close_all()

        t = threading.Thread(target=retry_takes_over)
        t.start()
        t.join()
        return entry

    monkeypatch.setattr("loyalty.services.adjust_points", slow_adjust)
    response = api.post(
        f"{BASE}/members/{member.external_id}/adjustments/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-late"
    )
    assert_error(response, 409, "idempotency_request_in_progress")
    assert not LedgerEntry.objects.exists()
    assert IdempotencyRecord.objects.get().lock_token == "the-retry"  # not ours to release
