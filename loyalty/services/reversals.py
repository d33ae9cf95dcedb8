"""Reversals: taking back an earning, restoring a debit."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import F
from django.utils import timezone

from loyalty.kernel import (
    Actor,
    history_user,
    outer_service,
)

from .. import events
from ..exceptions import (
    InvalidInput,
)
from ..models import LedgerEntry, LotConsumption, PointBalance, PointLot
from .core import (
    _check_points,
    _consume,
    _existing_entry,
    _expire_due_lots,
    _insert_entry,
    credit_points_in_transaction,
    lock_balance,
)


def reverse_earning_in_transaction(
    *,
    entry: LedgerEntry,
    amount: int,
    actor: Actor,
    reason: str,
    source_type: str,
    source_id: str,
    idempotency_key: str | None = None,
) -> tuple[LedgerEntry, int]:
    """Take back ``amount`` of what ``entry`` earned (a purchase return).

    Taken from the entry's own lot first (pending points are cancelled before anything else), then
    from the member's other spendable lots, soonest-expiring first; what is left becomes debt,
    so the balance never goes negative. Returns the return entry and the debt it created.

    Building block: the caller holds the transaction (``reverse_earning`` is the outer service).
    in_transaction()
    """
    _check_points(amount)
    existing = _existing_entry(idempotency_key)
    if existing is not None:
        return existing, 0
    balance = lock_balance(entry.member_id, entry.metric_id)
    now = timezone.now()
    _expire_due_lots(balance, now)
    reversal = _insert_entry(
        member_id=entry.member_id,
        metric_id=entry.metric_id,
        kind=LedgerEntry.Kind.RETURN,
        amount=-amount,
        created_at=now,
        effective_at=now,
        reverses=entry,
        source_type=source_type,
        source_id=str(source_id),
        actor=history_user(actor),
        reason=reason,
        idempotency_key=idempotency_key,
        breakdown={"reverses_entry": entry.pk},
    )
    own = PointLot.objects.select_for_update(of=("self",)).filter(entry=entry).order_by("pk").first()
    from_pending = from_balance = 0
    left = amount
    if own is not None and own.remaining:
        before = left
        left = _consume(reversal, [own], left)
        if own.pending:
            from_pending = before - left
        else:
            from_balance = before - left
    if left:
        others = (
            PointLot.objects.select_for_update()
            .filter(member_id=entry.member_id, metric_id=entry.metric_id, remaining__gt=0, pending=False)
            .order_by(F("expires_at").asc(nulls_last=True), "id")
        )
        before = left
        left = _consume(reversal, others, left)
        from_balance += before - left
    PointBalance.objects.filter(pk=balance.pk).update(
        pending=F("pending") - from_pending, balance=F("balance") - from_balance, debt=F("debt") + left
    )
    events.emit("points.debited", reversal)
    return reversal, left


@outer_service
def reverse_earning(**kwargs: Any) -> tuple[LedgerEntry, int]:
    """Outer service: runs ``reverse_earning_in_transaction`` (same arguments) in its own transaction."""
    return reverse_earning_in_transaction(**kwargs)


def restore_debit_in_transaction(
    *,
    debit: LedgerEntry,
    amount: int | None = None,
    actor: Actor,
    reason: str,
    source_type: str,
    source_id: str,
    grace_days: int = 0,
    idempotency_key: str | None = None,
) -> list[LedgerEntry]:
    """Give back (all or ``amount`` of) what a debit took, lot by lot, each with its original expiry.

    A lot that expired meanwhile comes back already expired (nobody escapes expiry by spending and
    rolling back) unless ``grace_days`` grants a new expiry, which the entry states. A partial
    restore gives back the latest-expiring points first, so the soonest-expiring part comes back
    last. Never returns more than the debit took, across all restores (409 ``exceeds_spent``).

    Building block: the caller holds the transaction (``restore_debit`` is the outer service).
    in_transaction()
    """
    from django.db.models import Sum

    from ..exceptions import ExceedsSpent

    if debit.amount >= 0:
        raise InvalidInput("Only a debit can be restored.")
    balance = lock_balance(debit.member_id, debit.metric_id)
    consumptions = list(LotConsumption.objects.filter(debit=debit).select_related("lot"))
    restored = {
        row["restored_from"]: row["total"]
        for row in PointLot.objects.filter(entry__reverses=debit, restored_from__isnull=False)
        .values("restored_from")
        .annotate(total=Sum("amount"))
        .order_by()
    }
    open_amounts = [(c, c.amount - restored.get(c.lot_id, 0)) for c in consumptions]
    restorable = sum(left for _, left in open_amounts)
    if amount is None:
        amount = restorable
        if amount == 0:
            raise ExceedsSpent("Everything this debit took has already been given back.")
    _check_points(amount)
    if amount > restorable:
        raise ExceedsSpent(
            f"Only {restorable} of the {-debit.amount} points spent can still be given back.",
            errors={"points": [f"At most {restorable}."]},
        )
    now = timezone.now()

    def latest_expiring_first(item):
        expires = item[0].lot.expires_at
        return (0, 0.0, -item[0].lot_id) if expires is None else (1, -expires.timestamp(), -item[0].lot_id)

    entries = []
    left = amount
    for consumption, open_amount in sorted(open_amounts, key=latest_expiring_first):
        if left == 0:
            break
        take = min(left, open_amount)
        if take <= 0:
            continue
        original = consumption.lot.expires_at
        expires_at, note = original, {}
        if original is not None and original <= now:
            if grace_days:
                expires_at = now + dt.timedelta(days=grace_days)
                note = {"grace_days": grace_days, "note": f"expired lot restored with a {grace_days}-day grace period"}
            else:
                note = {"note": "the original lot had expired; restored points expire at once"}
        entry = credit_points_in_transaction(
            member=debit.member,
            metric=debit.metric,
            amount=take,
            kind=LedgerEntry.Kind.ROLLBACK,
            actor=actor,
            reason=reason,
            expires_at=expires_at,
            never_expires=original is None,
            source_type=source_type,
            source_id=source_id,
            reverses=debit,
            breakdown={
                "restored_from_lot": consumption.lot_id,
                "original_expires_at": original.isoformat() if original else None,
                **note,
            },
            idempotency_key=f"{idempotency_key}:{consumption.lot_id}" if idempotency_key else None,
        )
        PointLot.objects.filter(entry=entry).update(restored_from=consumption.lot_id)
        entries.append(entry)
        left -= take
    _expire_due_lots(balance, now)
    return entries


@outer_service
def restore_debit(**kwargs: Any) -> list[LedgerEntry]:
    """Outer service: runs ``restore_debit_in_transaction`` (same arguments) in its own transaction."""
    return restore_debit_in_transaction(**kwargs)
