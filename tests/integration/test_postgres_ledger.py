"""What only the real PostgreSQL can prove: row locks under concurrency, the append-only trigger,
the CHECK on balances and the tier-history exclusion constraint."""

import datetime as dt
import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.utils import DatabaseError

from loyalty import services
from loyalty.exceptions import InsufficientPoints
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, Member, Metric, PointBalance, Tier, TierMembership
from loyalty.selectors import verify_ledger
from tests.integration.helpers import hammer

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("postgres_only")]


@pytest.mark.django_db(transaction=True)
def test_sixteen_threads_debit_one_balance_and_exactly_the_affordable_number_succeed():
    metric = Metric.objects.create(code="points", name="Points", expiry_days=None)
    Tier.objects.create(code="BRONZE", name="Bronze", rank=1)
    member = services.enroll_member(external_id="race", actor=SYSTEM)
    # 3 lots so that debits also race on lot consumption
    for amount in (100, 100, 50):
        services.credit_points(member=member, metric=metric, amount=amount, actor=SYSTEM)

    def insufficient_or_error(exc: Exception) -> str:
        return exc.code if isinstance(exc, InsufficientPoints) else f"error: {exc!r}"

    results = hammer(
        16,
        lambda i: services.debit_points(member=member, metric=metric, amount=40, actor=SYSTEM),
        outcome=insufficient_or_error,
    )

    assert results.count("ok") == 6  # 250 // 40
    assert results.count("insufficient_points") == 10
    balance = PointBalance.objects.get(member=member, metric=metric)
    assert balance.balance == 10
    assert LedgerEntry.objects.filter(kind="redeem").count() == 6
    report = verify_ledger()
    assert report.ok, report.problems


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_idempotency_key_credits_once():
    metric = Metric.objects.create(code="points", name="Points")
    member = services.enroll_member(external_id="dup", actor=SYSTEM)
    barrier = threading.Barrier(8)
    outcomes = []

    def credit():
        try:
            barrier.wait()
            entry = services.credit_points(
                member=member, metric=metric, amount=10, idempotency_key="bill-77", actor=SYSTEM
            )
            outcomes.append(entry.pk)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=credit) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(set(outcomes)) == 1 and len(outcomes) == 8
    assert PointBalance.objects.get(member=member).balance == 10


@pytest.mark.django_db
def test_trigger_rejects_update_and_delete_of_ledger_rows():
    metric = Metric.objects.create(code="points", name="Points")
    member = services.enroll_member(external_id="t", actor=SYSTEM)
    entry = services.credit_points(member=member, metric=metric, amount=5, actor=SYSTEM)
    debit = services.debit_points(member=member, metric=metric, amount=2, actor=SYSTEM)
    for sql, params in [
        ("UPDATE loyalty_ledgerentry SET amount = 500 WHERE id = %s", [entry.pk]),
        ("DELETE FROM loyalty_ledgerentry WHERE id = %s", [entry.pk]),
        ("UPDATE loyalty_lotconsumption SET amount = 1 WHERE debit_id = %s", [debit.pk]),
        ("DELETE FROM loyalty_lotconsumption WHERE debit_id = %s", [debit.pk]),
    ]:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql, params)
    assert LedgerEntry.objects.get(pk=entry.pk).amount == 5


@pytest.mark.django_db
def test_balance_check_constraint_refuses_a_negative_balance():
    metric = Metric.objects.create(code="points", name="Points")
    member = services.enroll_member(external_id="neg", actor=SYSTEM)
    services.credit_points(member=member, metric=metric, amount=5, actor=SYSTEM)
    with pytest.raises(IntegrityError), transaction.atomic():
        PointBalance.objects.filter(member=member).update(balance=-1)


@pytest.mark.django_db
def test_exclusion_constraint_refuses_overlapping_tier_intervals_written_behind_the_service():
    tier = Tier.objects.create(code="GOLD", name="Gold", rank=3)
    member = Member.objects.create(external_id="x")
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    TierMembership.objects.create(member=member, tier=tier, valid_from=start, valid_to=start + dt.timedelta(days=10))
    with pytest.raises(IntegrityError, match="tiermembership_no_overlap"), transaction.atomic():
        TierMembership.objects.create(
            member=member, tier=tier, valid_from=start + dt.timedelta(days=9), valid_to=start + dt.timedelta(days=20)
        )
    # touching, half-open intervals are accepted
    TierMembership.objects.create(
        member=member, tier=tier, valid_from=start + dt.timedelta(days=10), valid_to=start + dt.timedelta(days=20)
    )
