"""Purchases and returns: what a transaction earns, and what a return takes back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from loyalty.exceptions import ALREADY_RETURNED, RETURN_EXCEEDS_AMOUNT
from loyalty.kernel import (
    Actor,
    history_user,
    outer_service,
    require_perm,
    save_unique,
    save_with_history,
)

from ..earning import PurchaseData, compute_earning, share_of_points
from ..exceptions import AlreadyExists, Conflict, InvalidInput, MemberInactive
from ..models import (
    LedgerEntry,
    Member,
    Metric,
    ProgramSettings,
    Tier,
    Transaction,
    TransactionReturn,
)
from ..selectors import rule_set_at, rule_set_data, tier_at
from .core import credit_points_in_transaction, lock_balances
from .qualification import track_purchase
from .reversals import reverse_earning_in_transaction

# A POS clock may run a little ahead; anything further in the future is a mistake.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
MAX_AMOUNT = Decimal("9999999999.99")


def _clean_amount(amount: Any, field: str = "amount") -> Decimal:
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError, TypeError):
        raise InvalidInput("The amount must be a number.", errors={field: ["Must be a decimal number."]}) from None
    if isinstance(amount, bool) or not value.is_finite():
        raise InvalidInput("The amount must be a number.", errors={field: ["Must be a decimal number."]})
    if value <= 0:
        raise InvalidInput("The amount must be positive.", errors={field: ["Must be greater than zero."]})
    if value > MAX_AMOUNT:
        raise InvalidInput("The amount is not plausible.", errors={field: [f"Must be at most {MAX_AMOUNT}."]})
    if value != value.quantize(Decimal("0.01")):
        raise InvalidInput("At most two decimal places.", errors={field: ["At most two decimal places."]})
    return value.quantize(Decimal("0.01"))


def preview_earning(
    *,
    amount: Decimal,
    occurred_at: dt.datetime,
    member: Member | None = None,
    tier: Tier | None = None,
    channel: str = "",
    store: str = "",
) -> dict[str, Any]:
    """The breakdown a purchase would earn, without writing anything (admin preview, retro preview).

    No transaction: it writes nothing.
    """
    tier_code = tier.code if tier else None
    if tier is None and member is not None:
        at = tier_at(member, occurred_at)
        tier_code = at.code if at else None
    rule_set = rule_set_at(occurred_at)
    purchase = PurchaseData(amount=_clean_amount(amount), occurred_at=occurred_at, channel=channel, store=store)
    return compute_earning(purchase, tier_code, rule_set_data(rule_set) if rule_set else None)


def _check_member_can_earn(member: Member) -> None:
    if member.status != Member.Status.ACTIVE:
        raise MemberInactive(f"Member {member.external_id} is {member.status} and cannot earn points.")


@outer_service
def record_transaction(
    *,
    external_id: str,
    occurred_at: dt.datetime,
    amount: Any,
    currency: str,
    channel: str = "",
    store: str = "",
    member: Member | None = None,
    actor: Actor,
) -> Transaction:
    """Store a purchase; with a member it earns at once by the rules and tier at ``occurred_at``."""
    require_perm(actor, "loyalty.add_transaction")
    external_id = (external_id or "").strip()
    errors: dict[str, list[str]] = {}
    if not external_id:
        errors["external_id"] = ["This field is required."]
    value = _clean_amount(amount)
    program = ProgramSettings.load()
    if (currency or "").upper() != program.currency:
        errors["currency"] = [f"Unknown currency {currency!r}; this program counts in {program.currency}."]
    if occurred_at is None or timezone.is_naive(occurred_at):
        errors["occurred_at"] = ["A timestamp with a time zone offset is required."]
    elif occurred_at > timezone.now() + FUTURE_TOLERANCE:
        errors["occurred_at"] = ["Must not be in the future."]
    if errors:
        raise InvalidInput("The purchase is invalid.", errors=errors)
    if member is not None:
        _check_member_can_earn(member)
    txn = Transaction(
        external_id=external_id,
        occurred_at=occurred_at,
        amount=value,
        currency=program.currency,
        channel=(channel or "").strip(),
        store=(store or "").strip(),
        created_by=history_user(actor),
    )
    # The unique external_id is the one check (no read before): a repeat fails here.
    already = AlreadyExists(f"Bill {external_id!r} is already recorded.", errors={"external_id": ["Already recorded."]})
    save_unique(txn, actor=actor, reason="Recorded", duplicate=already)
    if member is not None:
        earn_for_transaction(transaction_=txn, member=member, actor=actor, kind=LedgerEntry.Kind.EARN)
    return txn


def earn_for_transaction(
    *,
    transaction_: Transaction,
    member: Member,
    actor: Actor,
    kind: str = LedgerEntry.Kind.EARN,
    reason: str = "Purchase",
    idempotency_prefix: str | None = None,
) -> dict[str, Any]:
    """Credit what a purchase earns (point-in-time rules and tier), then count it in the trackers of
    the current period, which may raise the member's tier from now on. Idempotent per transaction
    (or per ``idempotency_prefix``, e.g. a retro claim).

    It earns on what the customer kept: a bill returned in part before it earned (a retro claim
    processed after a return) earns on the rest, and the trackers count the rest; a bill returned
    in full earns nothing (409 ``already_returned``). Caller holds the transaction's row lock.

    Building block: the caller holds the transaction.
    """
    prefix = idempotency_prefix or f"txn:{transaction_.pk}"
    _check_member_can_earn(member)
    kept = kept_amount(transaction_)
    if kept <= 0:
        raise Conflict(f"Bill {transaction_.external_id} was returned in full.", code=ALREADY_RETURNED)
    breakdown = preview_earning(
        amount=kept,
        occurred_at=transaction_.occurred_at,
        member=member,
        channel=transaction_.channel,
        store=transaction_.store,
    )
    if kept != transaction_.amount:
        breakdown["bill_amount"] = str(transaction_.amount)
        breakdown["returned_before_earning"] = str(transaction_.returned_amount)
    metrics = {m.code: m for m in Metric.objects.filter(code__in=breakdown["points_by_metric"])}
    balances = lock_balances(member, metrics.values())
    for code, points in sorted(breakdown["points_by_metric"].items()):
        credit_points_in_transaction(
            member=member,
            metric=metrics[code],
            amount=points,
            kind=kind,
            actor=actor,
            reason=reason,
            effective_at=transaction_.occurred_at,
            purchase_at=transaction_.occurred_at,
            source_type="transaction",
            source_id=transaction_.external_id,
            breakdown=breakdown,
            idempotency_key=f"{prefix}:{code}",
            locked_balance=balances[metrics[code].pk],  # one credit per metric: nothing moved it since
        )
    transaction_.member = member
    transaction_.points_earned = breakdown["points"]
    transaction_.breakdown = breakdown
    transaction_.processed_at = timezone.now()
    save_with_history(
        transaction_, actor=actor, reason=reason, update_fields=["member", "points_earned", "breakdown", "processed_at"]
    )
    track_purchase(member=member, spend=kept, purchases=1, actor=actor)
    return breakdown


def kept_amount(transaction_: Transaction) -> Decimal:
    """What the customer kept of a bill: its amount less everything returned.

    No transaction: it writes nothing.
    """
    return transaction_.amount - transaction_.returned_amount


def _earned_on(entry: LedgerEntry, txn: Transaction) -> Decimal:
    """The amount an earning entry was computed on (its breakdown's ``amount``; the bill for old rows)."""
    try:
        return Decimal(str(entry.breakdown.get("amount") or txn.amount))
    except (InvalidOperation, AttributeError):
        return txn.amount


@outer_service
def return_transaction(
    *, transaction_: Transaction, amount: Any = None, reason: str = "", actor: Actor
) -> TransactionReturn:
    """Reverse, proportionally and by the original rules, the points a purchase earned.

    Pending points are cancelled first; points already spent become debt. Cumulative rounding
    makes a full return take back exactly what was earned, across any number of partial returns.
    """
    require_perm(actor, "loyalty.add_transactionreturn")

    def earnings():
        return list(
            LedgerEntry.objects.filter(source_type="transaction", source_id=transaction_.external_id, amount__gt=0)
            .select_related("metric", "member")
            .order_by("id")
        )

    earned = earnings()
    if earned:
        lock_balances(earned[0].member, [e.metric for e in earned])
    txn = Transaction.objects.select_for_update().get(pk=transaction_.pk)
    again = earnings()  # a retro claim may have been processed before we had the bill's lock
    if [e.pk for e in again] != [e.pk for e in earned]:
        earned = again
        lock_balances(earned[0].member, [e.metric for e in earned])
    left = txn.amount - txn.returned_amount
    if left <= 0:
        raise Conflict(f"Bill {txn.external_id} is already fully returned.", code=ALREADY_RETURNED)
    value = left if amount in (None, "") else _clean_amount(amount)
    if value > left:
        raise Conflict(
            f"Only {left} of bill {txn.external_id} can still be returned.",
            code=RETURN_EXCEEDS_AMOUNT,
            errors={"amount": [f"At most {left}."]},
        )
    ret = TransactionReturn(transaction=txn, amount=value, reason=reason, created_by=history_user(actor))
    save_with_history(ret, actor=actor, reason=reason or "Return")
    returned_total = txn.returned_amount + value
    reversed_points = debt = 0
    for entry in earned:
        already = -(
            LedgerEntry.objects.filter(reverses=entry, kind=LedgerEntry.Kind.RETURN).aggregate(total=Sum("amount"))[
                "total"
            ]
            or 0
        )
        # Shares of what the entry was earned on: a bill that earned after a first return (retro)
        # earned on the rest, and only returns after that take its points back.
        base = _earned_on(entry, txn)
        returned_since = max(returned_total - (txn.amount - base), Decimal(0))
        take = share_of_points(entry.amount, base, returned_since) - already
        if take > 0:
            _, owed = reverse_earning_in_transaction(
                entry=entry,
                amount=take,
                actor=actor,
                reason=reason or "Purchase return",
                source_type="return",
                source_id=str(ret.pk),
                idempotency_key=f"return:{ret.pk}:{entry.pk}",
            )
            reversed_points += take
            debt += owed
    ret.points_reversed, ret.debt_created = reversed_points, debt
    ret.save(update_fields=["points_reversed", "debt_created"])
    txn.returned_amount = returned_total
    save_with_history(txn, actor=actor, reason=reason or "Return", update_fields=["returned_amount"])
    if txn.member_id and txn.processed_at:
        track_purchase(
            member=txn.member,
            spend=-value,
            purchases=-1 if returned_total >= txn.amount else 0,
            actor=actor,
            evaluate=False,
        )
    return ret
