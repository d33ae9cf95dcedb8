"""Every state change of the loyalty core. Admin, API, tasks and commands all call these.

Locking order (always): the member's PointBalance rows, by metric id, then lots, then anything else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from ..exceptions import (
    AlreadyExists,
    Conflict,
    InsufficientPoints,
    InvalidInput,
    MemberInactive,
    PermissionRequired,
)
from ..models import LedgerEntry, LotConsumption, Member, Metric, PointBalance, PointLot, Tier, TierMembership
from ..workflow import check_transition, save_with_history

User = AbstractBaseUser | AnonymousUser | None

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


def _require_perm(actor: User, perm: str) -> None:
    if actor is None:  # system actions (beat tasks, migrations) run without a user
        return
    if not actor.has_perm(perm):
        raise PermissionRequired(f"You need the permission {perm!r}.")


def _user_or_none(actor: User) -> AbstractBaseUser | None:
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _check_points(amount: int, *, field: str = "amount") -> None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput("Points must be a whole number.", errors={field: ["Must be an integer."]})
    if amount <= 0:
        raise InvalidInput("Points must be positive.", errors={field: ["Must be greater than zero."]})
    if amount > MAX_POINTS_PER_ENTRY:
        raise InvalidInput(
            "That amount is not plausible.", errors={field: [f"Must be at most {MAX_POINTS_PER_ENTRY}."]}
        )


# --- members and tiers ---------------------------------------------------------------------


@transaction.atomic
def enroll_member(
    *,
    external_id: str,
    email: str = "",
    name: str = "",
    phone: str = "",
    tier: Tier | None = None,
    enrolled_at: dt.datetime | None = None,
    actor: User = None,
    reason: str = "Enrolment",
) -> Member:
    """Create a member in the given tier (or the lowest one) with an opening tier interval."""
    external_id = (external_id or "").strip()
    if not external_id:
        raise InvalidInput("external_id is required.", errors={"external_id": ["This field is required."]})
    if Member.objects.filter(external_id=external_id).exists():
        raise AlreadyExists(
            f"A member with external_id {external_id!r} already exists.", errors={"external_id": ["Already in use."]}
        )
    now = timezone.now()
    tier = tier or Tier.objects.order_by("rank").first()
    member = Member(
        external_id=external_id, email=email, name=name, phone=phone, tier=tier, enrolled_at=enrolled_at or now
    )
    try:
        with transaction.atomic():
            save_with_history(member, actor=actor, reason=reason)
    except IntegrityError as exc:  # a concurrent enrolment won the race
        raise AlreadyExists(
            f"A member with external_id {external_id!r} already exists.", errors={"external_id": ["Already in use."]}
        ) from exc
    if tier is not None:
        membership = TierMembership(
            member=member,
            tier=tier,
            valid_from=member.enrolled_at,
            cause=TierMembership.Cause.ENROLMENT,
            reason=reason,
            changed_by=_user_or_none(actor),
        )
        save_with_history(membership, actor=actor, reason=reason)
    return member


@transaction.atomic
def update_member(*, member: Member, actor: User, reason: str = "Profile update", **fields: Any) -> Member:
    """Change profile fields and, through the transition table, the status."""
    allowed = {"email", "name", "phone", "status"}
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidInput(f"Cannot change {', '.join(sorted(unknown))}.")
    member = Member.objects.select_for_update().get(pk=member.pk)
    if "status" in fields and fields["status"] != member.status:
        check_transition(Member.STATUS_TRANSITIONS, member.status, fields["status"], field="status")
    changed = [name for name, value in fields.items() if getattr(member, name) != value]
    for name in changed:
        setattr(member, name, fields[name])
    if changed:
        save_with_history(member, actor=actor, reason=reason, update_fields=changed)
    return member


@transaction.atomic
def change_tier(
    *,
    member: Member,
    tier: Tier,
    actor: User,
    reason: str,
    cause: str = TierMembership.Cause.MANUAL,
    check_permission: bool = True,
) -> TierMembership:
    """Move a member to ``tier`` from now on: close the open interval, open a new one.

    Never backdated, so no earning already computed can change.
    """
    if cause == TierMembership.Cause.MANUAL and check_permission:
        _require_perm(actor, "loyalty.change_member_tier")
    if not (reason or "").strip():
        raise InvalidInput("A reason is required.", errors={"reason": ["This field is required."]})
    member = Member.objects.select_for_update().get(pk=member.pk)
    if member.status == Member.Status.CLOSED:
        raise MemberInactive("A closed member's tier cannot change.")
    now = timezone.now()
    current = TierMembership.objects.filter(member=member, valid_to__isnull=True).first()
    if current is not None:
        if current.tier_id == tier.pk:
            raise Conflict(f"The member is already {tier}.", code="already_in_tier")
        if current.valid_from > now:
            raise Conflict("The current tier interval starts in the future.", code="tier_history_conflict")
        current.valid_to = now
        save_with_history(current, actor=actor, reason=reason, update_fields=["valid_to"])
    _check_no_overlap(member, now, None)
    membership = TierMembership(
        member=member, tier=tier, valid_from=now, cause=cause, reason=reason, changed_by=_user_or_none(actor)
    )
    save_with_history(membership, actor=actor, reason=reason)
    member.tier = tier
    save_with_history(member, actor=actor, reason=f"Tier → {tier.code}: {reason}", update_fields=["tier"])
    return membership


def _check_no_overlap(
    member: Member, start: dt.datetime, end: dt.datetime | None, exclude_pk: int | None = None
) -> None:
    """The portable half of the no-overlap rule (PostgreSQL also has an exclusion constraint)."""
    qs = TierMembership.objects.filter(member=member).filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start))
    if end is not None:
        qs = qs.filter(valid_from__lt=end)
    if exclude_pk:
        qs = qs.exclude(pk=exclude_pk)
    # Zero-length intervals [t, t) hold no time and overlap nothing.
    qs = qs.exclude(valid_to=F("valid_from"))
    if qs.exists():
        raise Conflict("Tier history intervals may not overlap.", code="tier_history_overlap")


@transaction.atomic
def record_tier_interval(
    *, member: Member, tier: Tier, valid_from: dt.datetime, valid_to: dt.datetime | None, actor: User, reason: str
) -> TierMembership:
    """Import one historical interval (e.g. from a legacy platform); refuses overlaps."""
    _require_perm(actor, "loyalty.change_member_tier")
    if valid_to is not None and valid_to < valid_from:
        raise InvalidInput("valid_to must not be before valid_from.")
    member = Member.objects.select_for_update().get(pk=member.pk)
    _check_no_overlap(member, valid_from, valid_to)
    membership = TierMembership(
        member=member,
        tier=tier,
        valid_from=valid_from,
        valid_to=valid_to,
        cause=TierMembership.Cause.IMPORT,
        reason=reason,
        changed_by=_user_or_none(actor),
    )
    save_with_history(membership, actor=actor, reason=reason)
    if valid_to is None:
        member.tier = tier
        save_with_history(member, actor=actor, reason=reason, update_fields=["tier"])
    return membership


# --- ledger --------------------------------------------------------------------------------


def lock_balance(member: Member | int, metric: Metric | int) -> PointBalance:
    """Lock (creating if needed) the member's balance row: the first lock of every ledger write."""
    member_id = getattr(member, "pk", member)
    metric_id = getattr(metric, "pk", metric)
    PointBalance.objects.get_or_create(member_id=member_id, metric_id=metric_id)
    return PointBalance.objects.select_for_update().get(member_id=member_id, metric_id=metric_id)


def lock_balances(member: Member, metrics: Iterable[Metric]) -> dict[int, PointBalance]:
    """Lock several balance rows in metric-id order so concurrent writers never deadlock."""
    return {m.pk: lock_balance(member, m) for m in sorted(set(metrics), key=lambda m: m.pk)}


def _existing_entry(idempotency_key: str | None) -> LedgerEntry | None:
    if not idempotency_key:
        return None
    return LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()


def _insert_entry(**fields: Any) -> LedgerEntry:
    entry = LedgerEntry(**fields)
    entry.save()
    return entry


@transaction.atomic
def credit_points(
    *,
    member: Member,
    metric: Metric,
    amount: int,
    kind: str = LedgerEntry.Kind.EARN,
    actor: User = None,
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
) -> LedgerEntry:
    """Add points as a new lot; its expiry defaults to the metric's ``expiry_days`` from now
    (``never_expires`` overrides that for lots that must last, e.g. goodwill).

    Purchase earnings (``purchase_at`` given) stay pending until the metric's return window after
    the purchase has passed. Any debt from earlier returns is repaid from the new lot first.
    With an ``idempotency_key`` a repeated call returns the first entry and credits nothing.
    """
    _check_points(amount)
    if kind not in CREDIT_KINDS:
        raise InvalidInput(f"{kind!r} is not a credit kind.")
    existing = _existing_entry(idempotency_key)
    if existing is not None:
        return existing
    if member.status == Member.Status.CLOSED:
        raise MemberInactive("A closed member cannot receive points.")
    balance = lock_balance(member, metric)
    existing = _existing_entry(idempotency_key)  # re-check under the lock: a concurrent twin may have won
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
        actor=_user_or_none(actor),
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
    return entry


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
    return entries


@transaction.atomic
def debit_points(
    *,
    member: Member,
    metric: Metric,
    amount: int,
    kind: str = LedgerEntry.Kind.REDEEM,
    actor: User = None,
    reason: str = "",
    source_type: str = "",
    source_id: str = "",
    breakdown: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    reverses: LedgerEntry | None = None,
) -> LedgerEntry:
    """Spend points, consuming lots soonest-expiring first (never-expiring lots last).

    Expired lots are expired first, so nobody spends points that are already gone.
    """
    _check_points(amount)
    if kind not in DEBIT_KINDS:
        raise InvalidInput(f"{kind!r} is not a debit kind.")
    existing = _existing_entry(idempotency_key)
    if existing is not None:
        return existing
    balance = lock_balance(member, metric)
    existing = _existing_entry(idempotency_key)
    if existing is not None:
        return existing
    now = timezone.now()
    _expire_due_lots(balance, now)
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
        actor=_user_or_none(actor),
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
            "Ledger inconsistency: lots do not cover the balance. Run verify_ledger.", code="ledger_inconsistent"
        )
    PointBalance.objects.filter(pk=balance.pk).update(balance=F("balance") - amount)
    return entry


@transaction.atomic
def adjust_points(
    *,
    member: Member,
    metric: Metric,
    amount: int,
    actor: User,
    reason: str,
    idempotency_key: str | None = None,
) -> LedgerEntry:
    """A support adjustment: positive credits a lot, negative debits (and can never overdraw)."""
    _require_perm(actor, "loyalty.adjust_points")
    if not (reason or "").strip():
        raise InvalidInput("A reason is required.", errors={"reason": ["This field is required."]})
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
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
        return credit_points(amount=amount, **common)
    return debit_points(amount=-amount, **common)


def expire_points(*, now: dt.datetime | None = None, batch_size: int = 500) -> int:
    """Write expiry entries for every lot that is due; one short transaction per account."""
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
            with transaction.atomic():
                balance = lock_balance(member_id, metric_id)
                written += len(_expire_due_lots(balance, now))


def activate_pending_points(*, now: dt.datetime | None = None, batch_size: int = 500) -> int:
    """Make pending lots whose return window has passed spendable; one transaction per account."""
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
            with transaction.atomic():
                balance = lock_balance(member_id, metric_id)
                lots = list(
                    PointLot.objects.select_for_update().filter(
                        member_id=member_id, metric_id=metric_id, pending=True, available_at__lte=now
                    )
                )
                moving = sum(lot.remaining for lot in lots)
                PointLot.objects.filter(pk__in=[lot.pk for lot in lots]).update(pending=False)
                PointBalance.objects.filter(pk=balance.pk).update(
                    pending=F("pending") - moving, balance=F("balance") + moving
                )
                activated += len(lots)


@transaction.atomic
def reverse_earning(
    *,
    entry: LedgerEntry,
    amount: int,
    actor: User,
    reason: str,
    source_type: str,
    source_id: str,
    idempotency_key: str | None = None,
) -> tuple[LedgerEntry, int]:
    """Take back ``amount`` of what ``entry`` earned (a purchase return).

    Taken from the entry's own lot first (pending points are cancelled before anything else), then
    from the member's other spendable lots, soonest-expiring first; what is left becomes debt,
    so the balance never goes negative. Returns the return entry and the debt it created.
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
        actor=_user_or_none(actor),
        reason=reason,
        idempotency_key=idempotency_key,
        breakdown={"reverses_entry": entry.pk},
    )
    own = PointLot.objects.select_for_update().filter(entry=entry).first()
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
    return reversal, left


@transaction.atomic
def restore_debit(
    *,
    debit: LedgerEntry,
    amount: int | None = None,
    actor: User,
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
        entry = credit_points(
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
