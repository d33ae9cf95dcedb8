"""The ledger: every movement of points, with its lots and balances.

Locking order (always): the member's PointBalance rows, by metric id, then lots, then anything else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db.models import F
from django.utils import timezone

from loyalty.exceptions import LEDGER_INCONSISTENT
from loyalty.kernel import (
    Actor,
    history_user,
    is_whole_number,
    outer_service,
    own_transaction,
    require_perm,
    require_reason,
)

from .. import events
from ..exceptions import (
    Conflict,
    InsufficientPoints,
    InvalidInput,
    MemberInactive,
)
from ..models import LedgerEntry, LotConsumption, Member, Metric, PointBalance, PointLot

# The largest single movement of points we accept; anything bigger is a typo or an attack.
MAX_POINTS_PER_ENTRY = 1_000_000_000

CREDIT_KINDS = {
    LedgerEntry.Kind.EARN,
    LedgerEntry.Kind.ROLLBACK,
    LedgerEntry.Kind.RETRO,
    LedgerEntry.Kind.ADJUSTMENT,
    LedgerEntry.Kind.AWARD,
}
DEBIT_KINDS = {
    LedgerEntry.Kind.REDEEM,
    LedgerEntry.Kind.ADJUSTMENT,
    LedgerEntry.Kind.EXPIRY,
    LedgerEntry.Kind.ROLLBACK,  # reversing a bonus credit
}


def _check_points(amount: int, *, field: str = "amount") -> None:
    if not is_whole_number(amount):
        raise InvalidInput("Points must be a whole number.", errors={field: ["Must be an integer."]})
    if amount <= 0:
        raise InvalidInput("Points must be positive.", errors={field: ["Must be greater than zero."]})
    if amount > MAX_POINTS_PER_ENTRY:
        raise InvalidInput(
            "That amount is not plausible.", errors={field: [f"Must be at most {MAX_POINTS_PER_ENTRY}."]}
        )


def lock_balance(member: Member | int, metric: Metric | int) -> PointBalance:
    """Lock (creating if needed) the member's balance row: the first lock of every ledger write.

    Building block: the caller holds the transaction.
    """
    member_id = getattr(member, "pk", member)
    metric_id = getattr(metric, "pk", metric)
    # of=("self",) and ordered by pk: the model's default ordering joins member and metric, and a
    # bare FOR UPDATE would lock those rows too — every ledger write serialised on the metric row.
    locked = (
        PointBalance.objects.select_for_update(of=("self",))
        .filter(member_id=member_id, metric_id=metric_id)
        .order_by("pk")
        .first()
    )
    if locked is not None:  # the usual case: one round trip
        return locked
    # First movement of this metric: create the row without a savepoint (a concurrent twin's insert
    # wins quietly), then lock whichever row is there.
    PointBalance.objects.bulk_create([PointBalance(member_id=member_id, metric_id=metric_id)], ignore_conflicts=True)
    return PointBalance.objects.select_for_update().get(member_id=member_id, metric_id=metric_id)


def lock_balances(member: Member, metrics: Iterable[Metric]) -> dict[int, PointBalance]:
    """Lock several balance rows in metric-id order so concurrent writers never deadlock.

    Building block: the caller holds the transaction.
    """
    return {m.pk: lock_balance(member, m) for m in sorted(set(metrics), key=lambda m: m.pk)}


def _held(balance: PointBalance | None, member: Member, metric: Metric) -> PointBalance | None:
    """The caller's locked balance row, if it is this member's for this metric."""
    if balance is None:
        return None
    if balance.member_id != member.pk or balance.metric_id != metric.pk:
        raise ValueError("locked_balance is another member's or metric's row.")
    return balance


def _existing_entry(idempotency_key: str | None) -> LedgerEntry | None:
    if not idempotency_key:
        return None
    return LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()


def _insert_entry(**fields: Any) -> LedgerEntry:
    entry = LedgerEntry(**fields)
    entry.save()
    return entry


def credit_points_in_transaction(
    *,
    member: Member,
    metric: Metric,
    amount: int,
    kind: str = LedgerEntry.Kind.EARN,
    actor: Actor,
    reason: str = "",
    effective_at: dt.datetime | None = None,
    expires_at: dt.datetime | None = None,
    never_expires: bool = False,
    purchase_at: dt.datetime | None = None,
    source_type: str = "",
    source_id: str = "",
    breakdown: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    reverses: LedgerEntry | None = None,
    locked_balance: PointBalance | None = None,
) -> LedgerEntry:
    """Add points as a new lot; its expiry defaults to the metric's ``expiry_days`` from now
    (``never_expires`` overrides that for lots that must last, e.g. goodwill).

    Purchase earnings (``purchase_at`` given) stay pending until the metric's return window after
    the purchase has passed. Any debt from earlier returns is repaid from the new lot first.
    With an ``idempotency_key`` a repeated call returns the first entry and credits nothing.
    ``locked_balance`` as for ``debit_points_in_transaction``.

    Building block: the caller holds the transaction (``credit_points`` is the outer service).
    in_transaction()
    """
    _check_points(amount)
    if kind not in CREDIT_KINDS:
        raise InvalidInput(f"{kind!r} is not a credit kind.")
    if member.status == Member.Status.CLOSED:
        existing = _existing_entry(idempotency_key)  # a repeat of a credit made before the closing
        if existing is not None:
            return existing
        raise MemberInactive("A closed member cannot receive points.")
    balance = _held(locked_balance, member, metric) or lock_balance(member, metric)
    # Checked once, under the lock (a concurrent twin waits for it and then sees the first entry).
    existing = _existing_entry(idempotency_key)
    if existing is not None:
        return existing
    now = timezone.now()
    if never_expires:
        expires_at = None
    elif expires_at is None and metric.expiry_days is not None:
        expires_at = now + dt.timedelta(days=metric.expiry_days)
    available_at = None
    if purchase_at is not None and metric.pending_days:
        available_at = purchase_at + dt.timedelta(days=metric.pending_days)
    pending = available_at is not None and available_at > now
    entry = _insert_entry(
        member=member,
        metric=metric,
        kind=kind,
        amount=amount,
        created_at=now,
        effective_at=effective_at or now,
        expires_at=expires_at,
        reverses=reverses,
        source_type=source_type,
        source_id=str(source_id or ""),
        actor=history_user(actor),
        reason=reason,
        breakdown=breakdown or {},
        idempotency_key=idempotency_key,
    )
    lot = PointLot.objects.create(
        entry=entry,
        member=member,
        metric=metric,
        amount=amount,
        remaining=amount,
        expires_at=expires_at,
        pending=pending,
        available_at=available_at if pending else None,
        created_at=now,
    )
    repaid = _repay_debt(balance, lot) if balance.debt else 0
    net = amount - repaid
    figure = "pending" if pending else "balance"
    PointBalance.objects.filter(pk=balance.pk).update(**{figure: F(figure) + net, "debt": F("debt") - repaid})
    events.emit("points.credited", entry, member=member)
    return entry


@outer_service
def credit_points(**kwargs: Any) -> LedgerEntry:
    """Outer service: runs ``credit_points_in_transaction`` (same arguments) in its own transaction."""
    return credit_points_in_transaction(**kwargs)


def _repay_debt(balance: PointBalance, lot: PointLot) -> int:
    """Repay outstanding debt (oldest debit first) from a new lot. Caller holds the balance lock."""
    from django.db.models import Sum
    from django.db.models.functions import Coalesce

    outstanding = (
        LedgerEntry.objects.filter(member_id=balance.member_id, metric_id=balance.metric_id, amount__lt=0)
        .annotate(taken=Coalesce(Sum("consumptions__amount"), 0))
        .filter(taken__lt=-F("amount"))
        .order_by("id")
    )
    repaid = 0
    for debit in outstanding:
        take = min(-debit.amount - debit.taken, lot.remaining - repaid, balance.debt - repaid)
        if take <= 0:
            break
        LotConsumption.objects.create(debit=debit, lot=lot, amount=take)
        repaid += take
    if repaid:
        PointLot.objects.filter(pk=lot.pk).update(remaining=F("remaining") - repaid)
        lot.remaining -= repaid
    return repaid


def _consume(debit: LedgerEntry, lots: Iterable[PointLot], amount: int) -> int:
    """Take ``amount`` from the lots in order, recording each consumption; returns what is left."""
    left = amount
    for lot in lots:
        if left == 0:
            break
        take = min(left, lot.remaining)
        if take <= 0:
            continue
        LotConsumption.objects.create(debit=debit, lot=lot, amount=take)
        PointLot.objects.filter(pk=lot.pk).update(remaining=F("remaining") - take)
        lot.remaining -= take
        left -= take
    return left


def _expire_due_lots(balance: PointBalance, now: dt.datetime) -> list[LedgerEntry]:
    """Write expiry entries for the unspent part of lots that are due. Caller holds the balance lock."""
    lots = list(
        PointLot.objects.select_for_update()
        .filter(
            member_id=balance.member_id,
            metric_id=balance.metric_id,
            remaining__gt=0,
            pending=False,
            expires_at__lte=now,
        )
        .order_by("expires_at", "id")
    )
    entries = []
    for lot in lots:
        entry = _insert_entry(
            member_id=lot.member_id,
            metric_id=lot.metric_id,
            kind=LedgerEntry.Kind.EXPIRY,
            amount=-lot.remaining,
            created_at=now,
            effective_at=lot.expires_at,
            reason="Points expired",
            source_type="lot",
            source_id=str(lot.pk),
            idempotency_key=f"expiry:lot:{lot.pk}",
        )
        LotConsumption.objects.create(debit=entry, lot=lot, amount=lot.remaining)
        PointBalance.objects.filter(pk=balance.pk).update(balance=F("balance") - lot.remaining)
        PointLot.objects.filter(pk=lot.pk).update(remaining=0)
        entries.append(entry)
    events.emit_each("points.debited", entries)
    return entries


def debit_points_in_transaction(
    *,
    member: Member,
    metric: Metric,
    amount: int,
    kind: str = LedgerEntry.Kind.REDEEM,
    actor: Actor,
    reason: str = "",
    source_type: str = "",
    source_id: str = "",
    breakdown: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    reverses: LedgerEntry | None = None,
    locked_balance: PointBalance | None = None,
) -> LedgerEntry:
    """Spend points, consuming lots soonest-expiring first (never-expiring lots last).

    Expired lots are expired first, so nobody spends points that are already gone.
    ``locked_balance``: the row ``lock_balance`` gave the caller in this transaction, when nothing
    has moved it since (saves locking it a second time).

    Building block: the caller holds the transaction (``debit_points`` is the outer service).
    in_transaction()
    """
    _check_points(amount)
    if kind not in DEBIT_KINDS:
        raise InvalidInput(f"{kind!r} is not a debit kind.")
    balance = _held(locked_balance, member, metric) or lock_balance(member, metric)
    # Checked once, under the lock (a concurrent twin waits for it and then sees the first entry).
    existing = _existing_entry(idempotency_key)
    if existing is not None:
        return existing
    now = timezone.now()
    if _expire_due_lots(balance, now):  # the row read under the lock is current unless lots expired
        balance.refresh_from_db(fields=["balance"])
    if balance.balance < amount:
        raise InsufficientPoints(
            f"The member has {balance.balance} {metric.code}; {amount} are needed.",
            errors={"amount": [f"Available: {balance.balance}."]},
        )
    entry = _insert_entry(
        member=member,
        metric=metric,
        kind=kind,
        amount=-amount,
        created_at=now,
        effective_at=now,
        reverses=reverses,
        source_type=source_type,
        source_id=str(source_id or ""),
        actor=history_user(actor),
        reason=reason,
        breakdown=breakdown or {},
        idempotency_key=idempotency_key,
    )
    # NULLs last on every database: never-expiring lots are spent after every dated one.
    lots = (
        PointLot.objects.select_for_update()
        .filter(member=member, metric=metric, remaining__gt=0, pending=False)
        .order_by(F("expires_at").asc(nulls_last=True), "id")
    )
    left = _consume(entry, lots, amount)
    if left:  # the cached balance and the lots disagree: refuse rather than corrupt
        raise Conflict(
            "Ledger inconsistency: lots do not cover the balance. Run verify_ledger.", code=LEDGER_INCONSISTENT
        )
    PointBalance.objects.filter(pk=balance.pk).update(balance=F("balance") - amount)
    events.emit("points.debited", entry, member=member)
    return entry


@outer_service
def debit_points(**kwargs: Any) -> LedgerEntry:
    """Outer service: runs ``debit_points_in_transaction`` (same arguments) in its own transaction."""
    return debit_points_in_transaction(**kwargs)


@outer_service
def adjust_points(
    *,
    member: Member,
    metric: Metric,
    amount: int,
    actor: Actor,
    reason: str,
    idempotency_key: str | None = None,
) -> LedgerEntry:
    """A support adjustment: positive credits a lot, negative debits (and can never overdraw)."""
    require_perm(actor, "loyalty.adjust_points")
    require_reason(reason)
    if not is_whole_number(amount) or amount == 0:
        raise InvalidInput("The amount must be a non-zero whole number.", errors={"amount": ["Must be non-zero."]})
    common = dict(
        member=member,
        metric=metric,
        actor=actor,
        reason=reason,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        source_type="adjustment",
        idempotency_key=idempotency_key,
    )
    if amount > 0:
        return credit_points_in_transaction(amount=amount, **common)
    return debit_points_in_transaction(amount=-amount, **common)


def expire_points(*, now: dt.datetime | None = None, batch_size: int = 500) -> int:
    """Write expiry entries for every lot that is due; one short transaction per account.

    Runs its own transactions (durable), one per account.
    """
    now = now or timezone.now()
    written = 0
    while True:
        accounts = list(
            PointLot.objects.filter(remaining__gt=0, pending=False, expires_at__lte=now)
            .values_list("member_id", "metric_id")
            .distinct()[:batch_size]
        )
        if not accounts:
            return written
        for member_id, metric_id in accounts:
            with own_transaction():
                balance = lock_balance(member_id, metric_id)
                written += len(_expire_due_lots(balance, now))


def activate_pending_points(*, now: dt.datetime | None = None, batch_size: int = 500) -> int:
    """Make pending lots whose return window has passed spendable; one transaction per account.

    Runs its own transactions (durable), one per account.
    """
    now = now or timezone.now()
    activated = 0
    while True:
        accounts = list(
            PointLot.objects.filter(pending=True, available_at__lte=now)
            .values_list("member_id", "metric_id")
            .distinct()[:batch_size]
        )
        if not accounts:
            return activated
        for member_id, metric_id in accounts:
            with own_transaction():
                balance = lock_balance(member_id, metric_id)
                lots = list(
                    PointLot.objects.select_for_update(of=("self",))
                    .filter(member_id=member_id, metric_id=metric_id, pending=True, available_at__lte=now)
                    .order_by("pk")
                )
                moving = sum(lot.remaining for lot in lots)
                PointLot.objects.filter(pk__in=[lot.pk for lot in lots]).update(pending=False)
                PointBalance.objects.filter(pk=balance.pk).update(
                    pending=F("pending") - moving, balance=F("balance") + moving
                )
                activated += len(lots)
