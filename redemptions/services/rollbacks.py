"""Rollbacks: requested by support, executed by the gate, or waiting for a second person."""

from __future__ import annotations

from loyalty import events
from loyalty.exceptions import InvalidInput
from loyalty.kernel import (
    Actor,
    outer_service,
    require_four_eyes,
    require_perm,
    require_reason,
    require_transition,
    transition,
)

from ..models import Redemption, Rollback
from .common import lock_redemption, notify_rollback
from .refunds import Path, give_back


@outer_service
def rollback_redemption(
    *, redemption: Redemption, reason: str, actor: Actor, points: int | None = None, note: str = ""
) -> Rollback:
    """Undo a redemption in one safe action: points back with their original lots, the issued code
    voided, the redemption canceled (or the partial amount recorded), stock back if nothing shipped,
    and the member told. Where the policy says so it waits for a second person instead."""
    require_perm(actor, "redemptions.add_rollback")
    if reason not in Rollback.Reason.values:
        raise InvalidInput("Unknown reason.", errors={"reason": [f"One of {Rollback.Reason.values}."]})
    locked = lock_redemption(redemption)
    rollback = give_back(
        locked,
        path=Path.ROLLBACK,
        actor=actor,
        reason=reason,
        note=note,
        points=points,
        history_reason=f"Rolled back ({reason})",
    )
    assert rollback is not None  # the rollback path always records
    return rollback


def _decide(rollback: Rollback, actor: Actor, target: str) -> tuple[Rollback, Redemption]:
    """Lock in the house order (balance, member, redemption, then the rollback) and check four-eyes."""
    require_perm(actor, "redemptions.approve_rollback")
    current = Rollback.objects.select_related("redemption").get(pk=rollback.pk)
    redemption = lock_redemption(current.redemption)
    locked = Rollback.objects.select_for_update().get(pk=rollback.pk)
    require_transition(locked, "status", target)
    require_four_eyes(locked.requested_by_id, actor, "You requested this rollback; another approver must decide.")
    locked.redemption = redemption
    return locked, redemption


@outer_service
def approve_rollback(*, rollback: Rollback, actor: Actor, note: str = "") -> Rollback:
    """A second person executes a pending rollback; the gate re-checks what may have changed."""
    locked, redemption = _decide(rollback, actor, Rollback.Status.EXECUTED)
    locked.approved_by = actor
    locked.decision_note = (note or "")[:255]
    executed = give_back(
        redemption,
        path=Path.ROLLBACK_APPROVAL,
        actor=actor,
        reason=locked.reason,
        note=locked.note,
        points=None if locked.full else locked.points_requested,
        rollback=locked,
        history_reason=f"Rolled back ({locked.reason})",
    )
    assert executed is not None
    return executed


@outer_service
def reject_rollback(*, rollback: Rollback, actor: Actor, reason: str) -> Rollback:
    """Nothing is given back; the member is told."""
    require_reason(reason)
    locked, _ = _decide(rollback, actor, Rollback.Status.REJECTED)
    transition(
        locked,
        "status",
        Rollback.Status.REJECTED,
        actor=actor,
        reason=f"Rejected: {reason}",
        changes={"rejected_by": actor, "decision_note": reason.strip()[:255]},
    )
    notify_rollback(locked, "rollback_rejected")
    events.emit("rollback.rejected", locked)
    return locked
