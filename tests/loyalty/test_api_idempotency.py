"""Idempotency keys with a lease, and what an unexpected error mid-request leaves behind (nothing).

Concurrent requests with one key and a database connection killed mid-request, on PostgreSQL:
tests/integration/test_postgres_api_faults.py.
"""

import datetime as dt

import pytest
import time_machine
from django.db import IntegrityError
from django.utils import timezone

from loyalty.models import IdempotencyRecord, LedgerEntry, PointBalance
from loyalty.services import core
from tests.helpers import BASE, assert_error

URL = f"{BASE}/members/M-1/adjustments/"
BODY = {"metric": "points", "amount": 25, "reason": "Goodwill"}


@pytest.fixture
def fail_after_the_entry(monkeypatch):
    """The request dies right after the ledger entry is written, before its lot and balance."""

    def arm():
        real = core._insert_entry

        def insert_then_fail(**fields):
            real(**fields)
            raise RuntimeError("boom")

        monkeypatch.setattr(core, "_insert_entry", insert_then_fail)
        return lambda: monkeypatch.setattr(core, "_insert_entry", real)

    return arm


def balance(member):
    row = PointBalance.objects.filter(member=member).first()
    return row.balance if row else 0


@pytest.mark.django_db
@pytest.mark.parametrize("key", [None, "k-crash"])
def test_an_unexpected_error_mid_request_is_a_clean_500_and_writes_nothing(
    api, member, metric, key, fail_after_the_entry
):
    disarm = fail_after_the_entry()
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    response = api.post(URL, BODY, format="json", **headers)
    assert_error(response, 500, "server_error")
    assert "boom" not in response.content.decode()  # nothing internal leaks
    assert not LedgerEntry.objects.exists() and balance(member) == 0
    assert not IdempotencyRecord.objects.exists()  # the key is free: a retry runs
    disarm()
    retry = api.post(URL, BODY, format="json", **headers)
    assert retry.status_code == 201, retry.content
    assert LedgerEntry.objects.count() == 1 and balance(member) == 25


@pytest.mark.django_db
def test_a_key_whose_request_died_is_taken_over_after_its_lease(api, member, metric, settings, monkeypatch):
    """A worker killed at its timeout leaves the key in progress; after the lease a retry runs once."""
    settings.IDEMPOTENCY_LEASE_SECONDS = 60
    start = timezone.now()
    monkeypatch.setattr("loyalty.api.base._Claim.release", lambda self: None)  # the process died: no clean-up
    monkeypatch.setattr("loyalty.services.adjust_points", lambda **kw: (_ for _ in ()).throw(SystemError("killed")))
    with time_machine.travel(start, tick=False):
        assert api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-stuck").status_code == 500
    monkeypatch.undo()
    record = IdempotencyRecord.objects.get()
    assert record.response_status is None and record.locked_until == start + dt.timedelta(seconds=60)

    with time_machine.travel(start + dt.timedelta(seconds=59), tick=False):
        busy = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-stuck")
    assert_error(busy, 409, "idempotency_request_in_progress")
    assert not LedgerEntry.objects.exists()

    with time_machine.travel(start + dt.timedelta(seconds=61), tick=False):
        retry = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-stuck")
        again = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-stuck")
    assert retry.status_code == 201, retry.content
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true" and again.json() == retry.json()
    assert LedgerEntry.objects.count() == 1 and balance(member) == 25
    record.refresh_from_db()
    assert record.response_status == 201 and record.locked_until is None


@pytest.mark.django_db
def test_a_business_refusal_is_stored_with_what_the_service_wrote_before_refusing(api, member, metric):
    """A 409/422 is final and replayed; the wrapper's transaction does not undo the refusal's own records."""
    first = api.post(URL, {**BODY, "amount": -500}, format="json", HTTP_IDEMPOTENCY_KEY="k-no")
    assert_error(first, 409, "insufficient_points")
    again = api.post(URL, {**BODY, "amount": -500}, format="json", HTTP_IDEMPOTENCY_KEY="k-no")
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert IdempotencyRecord.objects.get().response_status == 409


@pytest.mark.django_db
def test_a_key_released_between_our_insert_and_our_lookup_is_claimed_again(api, member, metric, monkeypatch):
    """The race behind the old 500s (``IdempotencyRecord.DoesNotExist``): our INSERT met the first
    request's record, which that request deleted (its answer was a 404) before we looked it up."""
    real_create = IdempotencyRecord.objects.create
    calls = []

    def create_after_a_vanished_twin(**fields):
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("duplicate key value violates unique constraint")  # the twin, gone by now
        return real_create(**fields)

    monkeypatch.setattr(IdempotencyRecord.objects, "create", create_after_a_vanished_twin)
    response = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-race")
    assert response.status_code == 201, response.content
    assert len(calls) == 2 and LedgerEntry.objects.count() == 1
