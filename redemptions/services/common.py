"""What the redemption services share: the locks, stock, the issued code, reasons and email context."""

from __future__ import annotations

from typing import Any

from django.db.models import F
from django.utils import timezone

from loyalty.kernel import Actor, check_whole_number
from loyalty.models import Member, Reward
from loyalty.notifications import notify_member
from loyalty.services import lock_balance

from ..exceptions import OutOfStock
from ..models import Redemption, Rollback

MAX_QUANTITY = 100


def check_quantity(quantity: Any) -> None:
    """400 ``invalid`` unless ``quantity`` is a whole number from 1 to ``MAX_QUANTITY`` (every way in).

    No transaction: a check before any write.
    """
    check_whole_number(
        quantity,
        field="quantity",
        detail=f"quantity must be between 1 and {MAX_QUANTITY}.",
        error="Out of range.",
        maximum=MAX_QUANTITY,
    )


def lock_redemption(redemption: Redemption) -> Redemption:
    """The house locking order: the member's balance row, the member row, then the redemption.

    The member row serializes everything that counts a member's rows before writing one (the
    rollback per-member limit), whatever metric or none the redemption spent.

    Building block: the caller holds the transaction.
    """
    current = Redemption.objects.only("pk", "member_id", "metric_id", "points_spent").get(pk=redemption.pk)
    if current.metric_id and current.points_spent:
        lock_balance(current.member_id, current.metric_id)
    Member.objects.select_for_update().only("pk").get(pk=current.member_id)
    return (
        Redemption.objects.select_for_update(of=("self",))
        .select_related("reward", "member", "metric")
        .get(pk=redemption.pk)
    )


def take_stock(reward: Reward, quantity: int) -> None:
    """Conditional UPDATE: two concurrent redemptions can never take the last item twice.

    Building block: the caller holds the transaction.
    """
    if reward.stock is None:
        return
    taken = Reward.objects.filter(pk=reward.pk, stock__gte=quantity).update(stock=F("stock") - quantity)
    if not taken:
        raise OutOfStock(f"{reward} is out of stock.")


def give_stock_back(redemption: Redemption) -> bool:
    """Once per redemption (``stock_returned``); imports never took any.

    Building block: the caller holds the transaction.
    """
    if redemption.stock_returned:
        return False
    Reward.objects.filter(pk=redemption.reward_id, stock__isnull=False).update(stock=F("stock") + redemption.quantity)
    redemption.stock_returned = True
    return True


def void_issued_code(redemption: Redemption, *, actor: Actor, reason: str) -> bool:
    """Building block: the caller holds the transaction."""
    from promotions.services import void_code_for_system

    if not redemption.issued_code_id:
        return False
    return void_code_for_system(code=redemption.issued_code, actor=actor, reason=reason)


def email_context(r: Redemption, reason: str) -> dict[str, Any]:
    """No transaction: it writes nothing."""
    return {
        "reward": r.reward.name,
        "quantity": r.quantity,
        "points": r.points_spent,
        "reason": reason,
        "tracking_ref": r.tracking_ref,
        "code": r.issued_code.code if r.issued_code_id else "",
        "kind": r.get_kind_display().lower(),
    }


def notify_rollback(rollback: Rollback, template: str) -> None:
    """Building block: the caller holds the transaction."""
    r = rollback.redemption
    sent = notify_member(
        member=r.member,
        template=template,
        context={
            "reward": r.reward.name,
            "points": rollback.points_returned or rollback.points_requested,
            "code": r.issued_code.code if r.issued_code_id else "",
            "code_voided": rollback.code_voided,
            "reason": rollback.get_reason_display(),
            "note": rollback.decision_note,
        },
    )
    if sent:
        rollback.notified = True
        rollback.notified_at = timezone.now()
        Rollback.objects.filter(pk=rollback.pk).update(notified=True, notified_at=rollback.notified_at)
