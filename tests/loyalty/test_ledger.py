import datetime as dt

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError

from loyalty import services
from loyalty.exceptions import InsufficientPoints, InvalidInput, PermissionRequired
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, LedgerImmutableError, LotConsumption, PointBalance, PointLot
from loyalty.selectors import member_balances, verify_ledger

T0 = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)


def balance_of(member, metric) -> int:
    return PointBalance.objects.get(member=member, metric=metric).balance


@pytest.mark.django_db
def test_debits_consume_soonest_expiring_lots_first_and_never_expiring_last(member, metric):
    with time_machine.travel(T0, tick=False):
        services.credit_points(member=member, metric=metric, amount=100, never_expires=True, actor=SYSTEM)
        # the metric's expiry applies when none is given: T0 + 365 days
        late = services.credit_points(member=member, metric=metric, amount=100, actor=SYSTEM)
        soon = services.credit_points(
            member=member, metric=metric, amount=100, expires_at=T0 + dt.timedelta(days=10), actor=SYSTEM
        )
    assert late.expires_at == T0 + dt.timedelta(days=365)
    with time_machine.travel(T0 + dt.timedelta(days=1), tick=False):
        debit = services.debit_points(member=member, metric=metric, amount=150, actor=SYSTEM)
    taken = {c.lot.entry_id: c.amount for c in LotConsumption.objects.filter(debit=debit).select_related("lot")}
    assert taken == {soon.pk: 100, late.pk: 50}
    assert balance_of(member, metric) == 150
    assert verify_ledger().ok


@pytest.mark.django_db
def test_expiry_writes_entries_only_for_the_unspent_remainder(member, metric):
    with time_machine.travel(T0, tick=False):
        lot_entry = services.credit_points(
            member=member, metric=metric, amount=100, expires_at=T0 + dt.timedelta(days=30), actor=SYSTEM
        )
        services.credit_points(
            member=member, metric=metric, amount=40, expires_at=T0 + dt.timedelta(days=90), actor=SYSTEM
        )
        services.debit_points(member=member, metric=metric, amount=70, actor=SYSTEM)  # 70 from the first lot
    with time_machine.travel(T0 + dt.timedelta(days=31), tick=False):
        assert services.expire_points() == 1
        assert services.expire_points() == 0  # nothing twice
    expiry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.EXPIRY)
    assert expiry.amount == -30
    assert expiry.source_id == str(lot_entry.lot.pk)
    assert balance_of(member, metric) == 40
    assert PointLot.objects.get(entry=lot_entry).remaining == 0
    assert verify_ledger().ok


@pytest.mark.django_db
def test_debit_expires_due_lots_before_spending(member, metric):
    with time_machine.travel(T0, tick=False):
        services.credit_points(
            member=member, metric=metric, amount=100, expires_at=T0 + dt.timedelta(days=1), actor=SYSTEM
        )
    with time_machine.travel(T0 + dt.timedelta(days=2), tick=False), pytest.raises(InsufficientPoints):
        services.debit_points(member=member, metric=metric, amount=50, actor=SYSTEM)
    # The refused debit rolled back everything, including the lazy expiry; the beat task will write it.
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.EXPIRY).exists()
    assert verify_ledger().ok


@pytest.mark.django_db
def test_insufficient_points_changes_nothing(member, metric):
    services.credit_points(member=member, metric=metric, amount=10, actor=SYSTEM)
    with pytest.raises(InsufficientPoints) as exc:
        services.debit_points(member=member, metric=metric, amount=11, actor=SYSTEM)
    assert exc.value.code == "insufficient_points"
    assert LedgerEntry.objects.count() == 1
    assert balance_of(member, metric) == 10


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [0, -5, 10**12, 1.5, "10", True])
def test_implausible_amounts_are_refused(member, metric, amount):
    with pytest.raises(InvalidInput):
        services.credit_points(member=member, metric=metric, amount=amount, actor=SYSTEM)
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_idempotency_key_credits_once(member, metric):
    first = services.credit_points(member=member, metric=metric, amount=50, idempotency_key="bill-1", actor=SYSTEM)
    again = services.credit_points(member=member, metric=metric, amount=50, idempotency_key="bill-1", actor=SYSTEM)
    assert first.pk == again.pk
    assert balance_of(member, metric) == 50


@pytest.mark.django_db
def test_ledger_entries_refuse_update_and_delete_in_the_model(member, metric):
    entry = services.credit_points(member=member, metric=metric, amount=5, actor=SYSTEM)
    entry.reason = "tampered"
    with pytest.raises(LedgerImmutableError):
        entry.save()
    with pytest.raises(LedgerImmutableError):
        entry.delete()
    with pytest.raises(LedgerImmutableError):
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=500)
    with pytest.raises(LedgerImmutableError):
        LedgerEntry.objects.all().delete()
    entry.refresh_from_db()
    assert entry.amount == 5


@pytest.mark.django_db
def test_adjustment_needs_permission_and_reason_and_cannot_overdraw(member, metric, support_user, approver_user):
    with pytest.raises(PermissionRequired):
        services.adjust_points(member=member, metric=metric, amount=10, actor=approver_user, reason="goodwill")
    with pytest.raises(InvalidInput):
        services.adjust_points(member=member, metric=metric, amount=10, actor=support_user, reason=" ")
    entry = services.adjust_points(member=member, metric=metric, amount=10, actor=support_user, reason="goodwill")
    assert entry.kind == LedgerEntry.Kind.ADJUSTMENT and entry.actor == support_user
    with pytest.raises(InsufficientPoints):
        services.adjust_points(member=member, metric=metric, amount=-11, actor=support_user, reason="typo")
    services.adjust_points(member=member, metric=metric, amount=-10, actor=support_user, reason="typo")
    assert balance_of(member, metric) == 0
    assert verify_ledger().ok


@pytest.mark.django_db
def test_verify_ledger_catches_a_tampered_balance(member, metric, capsys):
    services.credit_points(member=member, metric=metric, amount=100, actor=SYSTEM)
    call_command("verify_ledger")
    assert "Ledger consistent" in capsys.readouterr().out
    PointBalance.objects.filter(member=member).update(balance=150)
    with pytest.raises(CommandError):
        call_command("verify_ledger")
    assert "cached balance 150 + pending 0 - debt 0 != sum of entries 100" in capsys.readouterr().err


@pytest.mark.django_db
def test_verify_ledger_catches_a_tampered_lot(member, metric):
    services.credit_points(member=member, metric=metric, amount=100, actor=SYSTEM)
    PointLot.objects.update(remaining=60)
    problems = verify_ledger().problems
    assert any("remaining 60 != amount - consumptions 100" in p for p in problems)


@pytest.mark.django_db
def test_balances_show_next_expiries(member, metric):
    with time_machine.travel(T0, tick=False):
        services.credit_points(
            member=member, metric=metric, amount=100, expires_at=T0 + dt.timedelta(days=5), actor=SYSTEM
        )
        services.credit_points(
            member=member, metric=metric, amount=30, expires_at=T0 + dt.timedelta(days=9), actor=SYSTEM
        )
        services.credit_points(member=member, metric=metric, amount=7, never_expires=True, actor=SYSTEM)
        [row] = member_balances(member)
    assert row["balance"] == 137
    assert [(e["expires_at"], e["amount"]) for e in row["expiring"]] == [
        (T0 + dt.timedelta(days=5), 100),
        (T0 + dt.timedelta(days=9), 30),
    ]


@pytest.mark.django_db
def test_restore_gives_back_the_lots_a_debit_took_with_their_expiry(member, metric):
    from loyalty.exceptions import ExceedsSpent

    with time_machine.travel(T0, tick=False):
        soon = services.credit_points(
            member=member, metric=metric, amount=100, expires_at=T0 + dt.timedelta(days=10), actor=SYSTEM
        )
        late = services.credit_points(
            member=member, metric=metric, amount=100, expires_at=T0 + dt.timedelta(days=90), actor=SYSTEM
        )
        debit = services.debit_points(member=member, metric=metric, amount=150, actor=SYSTEM)  # 100 soon + 50 late
    with time_machine.travel(T0 + dt.timedelta(days=1), tick=False):
        # partial: the latest-expiring part comes back first
        [first] = services.restore_debit(
            debit=debit, amount=40, actor=SYSTEM, reason="partial", source_type="t", source_id="1"
        )
        assert first.expires_at == late.expires_at and first.reverses == debit
    with time_machine.travel(T0 + dt.timedelta(days=20), tick=False):
        # the soon lot has expired meanwhile: it comes back expired
        rest = services.restore_debit(debit=debit, actor=SYSTEM, reason="rest", source_type="t", source_id="2")
        assert [(e.amount, e.expires_at) for e in rest] == [(10, late.expires_at), (100, soon.expires_at)]
        # the restored part of the expired lot expires at once (the original lot was fully spent)
        assert LedgerEntry.objects.filter(kind="expiry", amount=-100).count() == 1
        with pytest.raises(ExceedsSpent):
            services.restore_debit(debit=debit, amount=1, actor=SYSTEM, reason="more", source_type="t", source_id="3")
    assert balance_of(member, metric) == 100  # late lot: 50 left + 50 restored; the soon part expired
    assert verify_ledger().ok


@pytest.mark.django_db
def test_restore_with_grace_period_states_it(member, metric):
    with time_machine.travel(T0, tick=False):
        services.credit_points(
            member=member, metric=metric, amount=100, expires_at=T0 + dt.timedelta(days=5), actor=SYSTEM
        )
        debit = services.debit_points(member=member, metric=metric, amount=100, actor=SYSTEM)
    with time_machine.travel(T0 + dt.timedelta(days=30), tick=False):
        [entry] = services.restore_debit(
            debit=debit, actor=SYSTEM, reason="goodwill", source_type="t", source_id="1", grace_days=14
        )
    assert entry.expires_at == T0 + dt.timedelta(days=44)
    assert entry.breakdown["grace_days"] == 14 and "grace" in entry.breakdown["note"]
    assert balance_of(member, metric) == 100
