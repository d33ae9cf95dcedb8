"""The one gate through which a redemption or award gives back what it took: points, stock, the code.

Every path that gives anything back — a rollback (full or partial) and its approval, a status
change to ``canceled``, an award canceled, a reject, a return, an award expiring — calls
``give_back`` with its ``Path``. ``PATH_RULES`` is the single table of which policy checks apply to
which path and why; ``give_back`` applies them in one order and is the only code that writes the
give-back (docs/rollback-policy.md is the same table in words, and the tests follow it row by row).
A rule that lived in one endpoint and not here would be a hole: the adversary picks the other one.

The caller locks first (``lock_redemption``: balance row, member row, redemption) and checks its
own permission and transition; the gate checks the rest under those locks.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from django.db.models import QuerySet, Sum
from django.utils import timezone

from loyalty import events
from loyalty.exceptions import (
    BusinessRuleViolation,
    Conflict,
    ExceedsSpent,
    InvalidInput,
    InvalidTransition,
)
from loyalty.kernel import (
    Actor,
    check_whole_number,
    history_user,
    require_transition,
    save_with_history,
    transition,
)
from loyalty.models import LedgerEntry, ProgramSettings
from loyalty.services import restore_debit_in_transaction
from promotions.models import Code
from redemptions.exceptions import CODE_ALREADY_USED, PARTIAL_NOT_ALLOWED

from ..exceptions import RollbackApprovalRequired, RollbackPending, RollbackWindowClosed
from ..models import Redemption, Rollback
from .common import give_stock_back, notify_rollback, void_issued_code


class Path(enum.StrEnum):
    """Every way something comes back. The value names the path in docs and history."""

    ROLLBACK = "rollback"  # POST /redemptions/{id}/rollback; admin "Roll back" (one or bulk)
    ROLLBACK_APPROVAL = "rollback_approval"  # POST /rollbacks/{id}/approve; admin approve (one or bulk)
    CANCEL = "cancel"  # POST /redemptions/{id}/status canceled; admin "Change processing status"
    AWARD_CANCEL = "award_cancel"  # POST /redemptions/{id}/award-status canceled; admin "Change award status"
    REJECT = "reject"  # POST /redemptions/{id}/reject; admin "Reject"
    RETURN = "return"  # POST /redemptions/{id}/return; admin "Return"
    AWARD_EXPIRY = "award_expiry"  # beat task redemptions.tasks.expire_awards (no user)


class Check(enum.StrEnum):
    WINDOW = "window"  # rollback_window_days since the redemption (422 rollback_window_closed)
    STATUS = "status"  # processing status in rollback_statuses (409 invalid_transition)
    FULFILLMENT = "fulfillment"  # fulfillment status in rollback_fulfillment_statuses (409 invalid_transition)
    PENDING = "pending"  # no other rollback of it waits for approval (409 rollback_pending)
    CODE_USED = "code_used"  # the issued code's use stands: no points back at all (409 code_already_used)
    SECOND_PERSON = "second_person"  # approval reasons, cumulative threshold, per-member limit


ALL_CHECKS = frozenset(Check)
# A free award (points_spent 0) moves no points: the checks that protect points do not apply.
POINT_CHECKS = frozenset({Check.WINDOW, Check.SECOND_PERSON})


class OnSecondPerson(enum.StrEnum):
    WAIT = "wait"  # the give-back is recorded as a rollback pending_approval; an approver decides
    REFUSE = "refuse"  # 422 rollback_approval_required: request a rollback instead


@dataclass(frozen=True)
class PathRules:
    checks: frozenset[Check]
    on_second_person: OnSecondPerson | None
    recorded: bool  # writes a Rollback row: counts towards the per-member limit, shows in the trends
    why: str


PATH_RULES: dict[Path, PathRules] = {
    Path.ROLLBACK: PathRules(
        ALL_CHECKS,
        OnSecondPerson.WAIT,
        True,
        "The policy's own path: every check; where a second person is needed it waits for one.",
    ),
    Path.ROLLBACK_APPROVAL: PathRules(
        ALL_CHECKS - {Check.WINDOW, Check.SECOND_PERSON},
        None,
        True,
        "The second person is deciding now, and the window was checked when it was requested; everything "
        "that may have changed while it waited (status, shipment, code use, policy) is checked again.",
    ),
    Path.CANCEL: PathRules(
        ALL_CHECKS,
        OnSecondPerson.REFUSE,
        True,
        "Canceling gives back everything left: a full rollback by another name (reason other). A status "
        "change cannot wait for an approver, so where the policy needs one it is refused.",
    ),
    Path.AWARD_CANCEL: PathRules(
        ALL_CHECKS,
        OnSecondPerson.REFUSE,
        True,
        "The same as a cancel, from the award status.",
    ),
    Path.REJECT: PathRules(
        frozenset({Check.PENDING}),
        None,
        False,
        "Only from approval submitted: never approved, so nothing was delivered (no code issued, no "
        "fulfillment, no status moved); everything goes back. The decision is itself four-eyes.",
    ),
    Path.RETURN: PathRules(
        frozenset({Check.PENDING}),
        None,
        False,
        "As reject; the member may redeem the reward again.",
    ),
    Path.AWARD_EXPIRY: PathRules(
        ALL_CHECKS - POINT_CHECKS,
        None,
        False,
        "A system job, no user: an unclaimed free award past expires_at. It moves no points; an award "
        "whose code was used or that shipped is skipped (it was received).",
    ),
}

# Situations decided before the table, whatever the path:
#   approval submitted  -> only reject and return (409 invalid_transition for every other path)
#   imported (legacy)   -> only cancel, and it records the status only (nothing was taken here);
#                          every other path 409 invalid_transition: undo it on the legacy platform
#   free (points 0)     -> the table's checks minus POINT_CHECKS
DECIDING_PATHS = frozenset({Path.REJECT, Path.RETURN})
# Stock goes back when the item is (again) in the warehouse.
STOCK_BACK_FULFILLMENT = frozenset(
    {None, Redemption.Fulfillment.CONFIRMED_PAID, Redemption.Fulfillment.RETURNED_TO_SENDER}
)


def pending_rollbacks(redemption: Redemption, *, exclude: Rollback | None = None) -> QuerySet[Rollback]:
    """Building block: the caller holds the transaction."""
    qs = Rollback.objects.filter(redemption_id=redemption.pk, status=Rollback.Status.PENDING_APPROVAL)
    return qs.exclude(pk=exclude.pk) if exclude is not None else qs


def check_may_move(redemption: Redemption, *, field: str = "status", deciding_approval: bool = False) -> None:
    """While approval is pending, or a rollback of it waits for approval, no other status of the
    object moves forward (DESIGN.md); only the approver's decision moves a submitted one. Caller
    holds the lock.

    Building block: the caller holds the transaction.
    """
    if redemption.approval_status == Redemption.ApprovalStatus.SUBMITTED and not deciding_approval:
        raise InvalidTransition(
            f"{redemption} is waiting for approval; nothing else moves until an approver decides.",
            errors={field: ["Waiting for approval (approval_status submitted)."]},
        )
    if pending_rollbacks(redemption).exists():
        raise RollbackPending(
            f"A rollback of {redemption} is waiting for approval; nothing else moves until it is decided.",
            errors={field: ["A rollback is waiting for approval."]},
        )


def give_back(
    redemption: Redemption,
    *,
    path: Path,
    actor: Actor,
    history_reason: str,
    reason: str = Rollback.Reason.OTHER,
    note: str = "",
    points: int | None = None,
    rollback: Rollback | None = None,
    fields: tuple[str, ...] = (),
    moves: dict[str, str] | None = None,
) -> Rollback | None:
    """Apply the rollback policy for ``path`` and give back (all that is left, or ``points``).

    Returns the Rollback that records it (recorded paths), which is ``pending_approval`` where the
    path waits for a second person; ``None`` for the paths that record none. ``fields`` are the
    caller's own changes on the locked row (e.g. who decided), ``moves`` its status moves (the
    approval decision), saved with the give-back through the transition helper.

    Building block: the caller holds the transaction.
    """
    program = ProgramSettings.load()
    rules = _rules_for(redemption, path)
    checks = rules.checks - (POINT_CHECKS if redemption.points_spent == 0 else frozenset())
    if Check.WINDOW in checks and timezone.now() - redemption.created_at > dt.timedelta(
        days=program.rollback_window_days
    ):
        raise RollbackWindowClosed(
            f"Redemptions can be rolled back for {program.rollback_window_days} days; this one is from "
            f"{redemption.created_at:%Y-%m-%d}."
        )
    if redemption.status == Redemption.Status.CANCELED or (
        Check.STATUS in checks and redemption.status not in program.rollback_statuses
    ):
        raise InvalidTransition(
            f"A {redemption.status} redemption cannot be rolled back.",
            errors={"status": [f"Rollback allowed from: {program.rollback_statuses}."]},
        )
    fulfillment = redemption.fulfillment_status or "none"
    if Check.FULFILLMENT in checks and fulfillment not in program.rollback_fulfillment_statuses:
        raise InvalidTransition(
            f"A {fulfillment.replace('_', ' ')} redemption cannot be rolled back.",
            errors={"fulfillment_status": [f"Rollback allowed from: {program.rollback_fulfillment_statuses}."]},
        )
    pending = pending_rollbacks(redemption, exclude=rollback)
    if Check.PENDING in checks and pending.exists():
        raise RollbackPending(
            f"A rollback of {redemption} is waiting for approval; an approver decides it first.",
            errors={"rollback": [f"#{pk}" for pk in pending.values_list("pk", flat=True)]},
        )
    pending_points = pending.aggregate(total=Sum("points_requested"))["total"] or 0
    amount, full = _amount(redemption, program, path=path, points=points, pending_points=pending_points)
    if Check.CODE_USED in checks and redemption.issued_code_id:
        code = Code.objects.select_for_update().get(pk=redemption.issued_code_id)
        if code.uses > 0:
            raise Conflict(
                f"The issued code {code.code} was used; nothing comes back while that use stands. "
                "Roll the code use back first.",
                code=CODE_ALREADY_USED,
            )
    why = (
        second_person_reasons(redemption, program, reason=reason, points=amount, pending_points=pending_points)
        if Check.SECOND_PERSON in checks
        else []
    )
    if why and rules.on_second_person == OnSecondPerson.REFUSE:
        raise RollbackApprovalRequired(
            f"Giving back {amount} points needs a second person ({'; '.join(why)}). Request a rollback "
            f"(POST /redemptions/{redemption.pk}/rollback, or Roll back in the admin) so that an approver decides.",
            errors={"approval_required_because": why},
        )
    user = history_user(actor)
    if rules.recorded and rollback is None:
        if user is None:
            raise InvalidInput("A rollback is requested by a person; system jobs only expire awards.")
        rollback = Rollback(
            redemption=redemption,
            member_id=redemption.member_id,
            full=full,
            points_requested=amount,
            reason=reason,
            note=note,
            via=Rollback.Via.CANCEL if path in (Path.CANCEL, Path.AWARD_CANCEL) else Rollback.Via.ROLLBACK,
            requested_by=user,
            status=Rollback.Status.PENDING_APPROVAL if why else Rollback.Status.EXECUTED,
            approval_required_because="; ".join(why),
        )
        save_with_history(rollback, actor=actor, reason=f"Requested: {reason}")
        if why:
            _flag_repeated(redemption, rollback, why)
            notify_rollback(rollback, "rollback_requested")
            events.emit("rollback.requested", rollback)
            return rollback
    return _execute(
        redemption,
        program,
        path=path,
        actor=actor,
        amount=amount,
        full=full,
        rollback=rollback,
        history_reason=history_reason,
        fields=fields,
        moves=moves or {},
    )


def _rules_for(redemption: Redemption, path: Path) -> PathRules:
    if redemption.approval_status == Redemption.ApprovalStatus.SUBMITTED and path not in DECIDING_PATHS:
        raise InvalidTransition(
            f"{redemption} is waiting for approval: an approver rejects or returns it, and everything goes back.",
            errors={"approval_status": ["Waiting for approval (approval_status submitted)."]},
        )
    if redemption.channel == Redemption.Channel.IMPORT:
        if path != Path.CANCEL:
            raise InvalidTransition("Redemptions imported from the legacy platform are undone there, not here.")
        return PathRules(frozenset(), None, False, "Imported: nothing was taken here, nothing comes back.")
    return PATH_RULES[path]


def _amount(
    redemption: Redemption, program: ProgramSettings, *, path: Path, points: int | None, pending_points: int
) -> tuple[int, bool]:
    """(points to give back, whether that is everything left). Never more than was spent."""
    left = redemption.points_spent - redemption.points_returned - pending_points
    if redemption.channel == Redemption.Channel.IMPORT:
        return 0, True
    if points is None:
        if left <= 0 and redemption.points_spent > 0:
            raise ExceedsSpent("Everything spent on this redemption was already returned.")
        return max(left, 0), True
    if path not in (Path.ROLLBACK, Path.ROLLBACK_APPROVAL):
        raise InvalidInput("Only a rollback can give back part of what was spent.")
    check_whole_number(
        points, field="points", detail="points must be a positive whole number.", error="Positive integer."
    )
    if points > left:
        raise ExceedsSpent(
            f"Only {left} of the {redemption.points_spent} points spent can still be returned.",
            errors={"points": [f"At most {left}."]},
        )
    full = points == left
    if not full and not program.rollback_partial_allowed:
        raise BusinessRuleViolation("Partial rollbacks are not allowed by the policy.", code=PARTIAL_NOT_ALLOWED)
    return points, full


def second_person_reasons(
    redemption: Redemption, program: ProgramSettings, *, reason: str, points: int, pending_points: int = 0
) -> list[str]:
    """Why a give-back needs a second person (empty: it does not). The threshold counts everything
    already returned for the redemption, everything pending and this request; the member count is
    made under the member row lock (``lock_redemption``), so concurrent requests cannot all pass.

    Building block: the caller holds the transaction.
    """
    why = []
    if reason in (program.rollback_approval_reasons or []):
        why.append(f"reason {reason}")
    threshold = program.rollback_approval_above_points
    total = redemption.points_returned + pending_points + points
    if threshold is not None and total > threshold:
        why.append(f"{points} points > {threshold}" if total == points else f"{total} points in total > {threshold}")
    recent = (
        Rollback.objects.filter(member_id=redemption.member_id, created_at__gte=timezone.now() - dt.timedelta(days=30))
        .exclude(status=Rollback.Status.REJECTED)
        .count()
    )
    if recent >= program.rollback_max_per_member_30_days:
        why.append(f"{recent} rollbacks for this member in 30 days")
    return why


def _flag_repeated(redemption: Redemption, rollback: Rollback, why: list[str]) -> None:
    from promotions.models import AbuseSignal

    if any("rollbacks for this member" in w for w in why):
        AbuseSignal.objects.create(
            kind=AbuseSignal.Kind.REPEATED_ROLLBACKS,
            subject_type=AbuseSignal.Subject.MEMBER,
            subject=str(redemption.member_id),
            count=Rollback.objects.filter(member_id=redemption.member_id).count(),
            window_seconds=30 * 86400,
            detail={"rollback": rollback.pk},
        )


def _execute(
    redemption: Redemption,
    program: ProgramSettings,
    *,
    path: Path,
    actor: Actor,
    amount: int,
    full: bool,
    rollback: Rollback | None,
    history_reason: str,
    fields: tuple[str, ...],
    moves: dict[str, str],
) -> Rollback | None:
    """The only writer of a give-back: points with their original lots, then (when everything
    comes back) the unused issued code voided, stock back if the item is in the warehouse, and
    the redemption (and award) canceled."""
    entries: list[LedgerEntry] = []
    if amount and redemption.ledger_entry_id:
        label = f"Rollback ({rollback.reason})" if rollback else path.value.replace("_", " ").capitalize()
        entries = restore_debit_in_transaction(
            debit=redemption.ledger_entry,
            amount=amount,
            actor=actor,
            reason=f"{label}: {rollback.note if rollback else history_reason}".strip(": "),
            source_type="rollback" if rollback else "redemption",
            source_id=str(rollback.pk if rollback else redemption.pk),
            grace_days=program.rollback_expired_lot_grace_days,
            idempotency_key=f"rollback:{rollback.pk}" if rollback else f"{path.value}:{redemption.pk}",
        )
        redemption.points_returned += sum(e.amount for e in entries)
    update = ["points_returned", *fields]
    moves = dict(moves)
    code_voided = stock_restored = False
    if full:
        require_transition(redemption, "status", Redemption.Status.CANCELED)
        code_voided = void_issued_code(
            redemption, actor=actor, reason=f"Rollback #{rollback.pk}" if rollback else history_reason
        )
        if redemption.fulfillment_status in STOCK_BACK_FULFILLMENT:
            stock_restored = give_stock_back(redemption)
        moves["status"] = Redemption.Status.CANCELED
        update.append("stock_returned")
        if redemption.kind == Redemption.Kind.AWARD:
            moves["award_status"] = Redemption.AwardStatus.CANCELED
    if moves:
        transition(redemption, moves, actor=actor, reason=history_reason, also=update)
    else:
        save_with_history(redemption, actor=actor, reason=history_reason, update_fields=list(dict.fromkeys(update)))
    if full:
        events.emit("redemption.status_changed", redemption)
    if rollback is None:
        return None
    outcome = {
        "points_requested": amount,
        "points_returned": sum(e.amount for e in entries),
        "code_voided": code_voided,
        "stock_restored": stock_restored,
        "executed_at": timezone.now(),
    }
    if rollback.status == Rollback.Status.EXECUTED:  # executed at once: recorded as such when requested
        for name, value in outcome.items():
            setattr(rollback, name, value)
        save_with_history(rollback, actor=actor, reason="Executed")
    else:
        transition(
            rollback,
            "status",
            Rollback.Status.EXECUTED,
            actor=actor,
            reason="Executed",
            changes=outcome,
            also=("approved_by", "decision_note"),  # set by approve_rollback
        )
    rollback.ledger_entries.set(entries)
    notify_rollback(rollback, "rollback_executed")
    events.emit("rollback.executed", rollback)
    return rollback
