"""Redeeming and awarding rewards, and moving them through their lifecycles."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from loyalty.exceptions import (
    BusinessRuleViolation,
    Conflict,
    DomainError,
    FourEyesRequired,
    InvalidInput,
    InvalidTransition,
    MemberInactive,
)
from loyalty.models import LedgerEntry, Member, Reward
from loyalty.notifications import notify_member
from loyalty.selectors import tier_at
from loyalty.services import debit_points, lock_balance, restore_debit
from loyalty.services.core import User, _require_perm, _user_or_none
from loyalty.workflow import check_transition, save_with_history
from promotions import codegen
from promotions.models import Code, CodeEvent

from .models import Redemption, RewardCodePool, Rollback

MAX_QUANTITY = 100
logger = logging.getLogger(__name__)


class OutOfStock(Conflict):
    code = "out_of_stock"
    default_detail = "The reward is out of stock."


def _check_reward(reward: Reward, member: Member, quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput(f"quantity must be between 1 and {MAX_QUANTITY}.", errors={"quantity": ["Out of range."]})
    if member.status != Member.Status.ACTIVE:
        raise MemberInactive(f"Member {member.external_id} is {member.status}.")
    now = timezone.now()
    if not reward.is_available(now):
        raise BusinessRuleViolation(f"{reward} is not available now.", code="reward_unavailable")
    eligible = set(reward.eligible_tiers.values_list("pk", flat=True))
    if eligible:
        tier = tier_at(member, now)
        if tier is None or tier.pk not in eligible:
            raise BusinessRuleViolation(f"{reward} is not available in the member's tier.", code="not_eligible")
    if Redemption.objects.filter(
        member=member, reward=reward, approval_status=Redemption.ApprovalStatus.REJECTED
    ).exists():
        raise BusinessRuleViolation(
            f"A redemption of {reward} by this member was rejected; it cannot be redeemed again.", code="not_eligible"
        )


def _take_stock(reward: Reward, quantity: int) -> None:
    """Conditional UPDATE: two concurrent redemptions can never take the last item twice."""
    if reward.stock is None:
        return
    taken = Reward.objects.filter(pk=reward.pk, stock__gte=quantity).update(stock=F("stock") - quantity)
    if not taken:
        raise OutOfStock(f"{reward} is out of stock.")


def _give_stock_back(redemption: Redemption) -> None:
    if redemption.stock_returned:
        return
    Reward.objects.filter(pk=redemption.reward_id, stock__isnull=False).update(stock=F("stock") + redemption.quantity)
    redemption.stock_returned = True


def _issue_code(redemption: Redemption, actor: User) -> Code:
    """An unused, unassigned code from the reward's campaign pool, or a new one from its pattern."""
    pool = RewardCodePool.objects.select_related("campaign").filter(reward_id=redemption.reward_id).first()
    if pool is None:
        raise Conflict(f"{redemption.reward} has no campaign to issue codes from.", code="reward_misconfigured")
    code = (
        Code.objects.select_for_update(skip_locked=True)
        .filter(campaign=pool.campaign, assigned_member__isnull=True, uses=0, status=Code.Status.ACTIVE)
        .filter(valid_from__isnull=True)
        .order_by("id")
        .first()
    )
    valid_until = redemption.expires_at
    if code is None:
        pattern = codegen.Pattern.build(
            pattern=pool.campaign.code_pattern or "", length=None if pool.campaign.code_pattern else 12
        )
        for _ in range(10):
            text = codegen.generate(pattern, 1)[0]
            if not Code.objects.filter(normalized=codegen.normalize(text)).exists():
                code = Code.objects.create(campaign=pool.campaign, code=text, normalized=codegen.normalize(text))
                break
        else:
            raise Conflict("Could not find a free code; the campaign's pattern is too small.", code="pool_exhausted")
    code.assigned_member = redemption.member
    if valid_until and (code.valid_until is None or valid_until < code.valid_until):
        code.valid_until = valid_until
    code.save(update_fields=["assigned_member", "valid_until", "updated_at"])
    CodeEvent.objects.create(
        code=code,
        code_text=code.normalized,
        kind=CodeEvent.Kind.ASSIGNED,
        member=redemption.member,
        actor=_user_or_none(actor),
        client=getattr(actor, "username", "") or "",
        detail={"redemption": redemption.pk},
    )
    return code


def _expiry(reward: Reward) -> dt.datetime | None:
    return timezone.now() + dt.timedelta(days=reward.valid_days) if reward.valid_days else None


@transaction.atomic
def redeem_reward(
    *,
    member: Member,
    reward: Reward,
    actor: User,
    quantity: int = 1,
    channel: str = Redemption.Channel.API,
) -> Redemption:
    """Spend points on a reward: balance locked first, stock taken atomically, points debited by lot."""
    _require_perm(actor, "redemptions.add_redemption")
    _check_reward(reward, member, quantity)
    cost = reward.points * quantity
    if cost:
        lock_balance(member, reward.metric)
    _take_stock(reward, quantity)
    needs_approval = reward.requires_approval
    redemption = Redemption(
        kind=Redemption.Kind.REDEMPTION,
        member=member,
        reward=reward,
        quantity=quantity,
        points_spent=cost,
        metric=reward.metric,
        channel=channel,
        created_by=_user_or_none(actor),
        expires_at=_expiry(reward),
        approval_status=Redemption.ApprovalStatus.SUBMITTED if needs_approval else None,
    )
    save_with_history(redemption, actor=actor, reason="Redeemed")
    if cost:
        redemption.ledger_entry = debit_points(
            member=member,
            metric=reward.metric,
            amount=cost,
            kind=LedgerEntry.Kind.REDEEM,
            actor=actor,
            reason=f"Redeemed {reward.name}",
            source_type="redemption",
            source_id=str(redemption.pk),
            idempotency_key=f"redemption:{redemption.pk}",
        )
    if reward.type == Reward.Type.DISCOUNT_CODE and not needs_approval:
        redemption.issued_code = _issue_code(redemption, actor)
    redemption.save(update_fields=["ledger_entry", "issued_code"])
    return redemption


@transaction.atomic
def award_reward(
    *,
    member: Member,
    reward: Reward,
    actor: User,
    reason: str,
    quantity: int = 1,
    channel: str = Redemption.Channel.API,
) -> Redemption:
    """Give a reward for free (with a reason)."""
    _require_perm(actor, "redemptions.award_reward")
    if not (reason or "").strip():
        raise InvalidInput("A reason is required.", errors={"reason": ["This field is required."]})
    _check_reward(reward, member, quantity)
    _take_stock(reward, quantity)
    needs_approval = reward.requires_approval
    redemption = Redemption(
        kind=Redemption.Kind.AWARD,
        member=member,
        reward=reward,
        quantity=quantity,
        points_spent=0,
        metric=reward.metric,
        channel=channel,
        created_by=_user_or_none(actor),
        reason=reason.strip()[:255],
        expires_at=_expiry(reward),
        award_status=Redemption.AwardStatus.PENDING if needs_approval else Redemption.AwardStatus.AWARDED,
        approval_status=Redemption.ApprovalStatus.SUBMITTED if needs_approval else None,
    )
    save_with_history(redemption, actor=actor, reason=f"Awarded: {reason}")
    if reward.type == Reward.Type.DISCOUNT_CODE and not needs_approval:
        redemption.issued_code = _issue_code(redemption, actor)
        redemption.save(update_fields=["issued_code"])
    return redemption


def _lock(redemption: Redemption) -> Redemption:
    """Balance row first (the house locking order), then the redemption."""
    current = Redemption.objects.select_related("metric").get(pk=redemption.pk)
    if current.metric_id and current.points_spent:
        lock_balance(current.member_id, current.metric_id)
    return Redemption.objects.select_for_update(of=("self",)).select_related("reward", "member").get(pk=redemption.pk)


def give_back(
    redemption: Redemption,
    *,
    actor: User,
    reason: str,
    points: int | None = None,
    source_type: str = "redemption",
    source_id: str | None = None,
    grace_days: int = 0,
    key: str | None = None,
) -> list[LedgerEntry]:
    """Return spent points (all that is left, or ``points``) with their original lots. Caller holds the lock.

    Every give-back (reject, return, cancel, rollback) is a ledger entry of kind ``rollback`` that
    reverses the redemption's debit; its source (redemption or rollback) and reason say which it was.
    """
    if not redemption.ledger_entry_id:
        return []
    entries = restore_debit(
        debit=redemption.ledger_entry,
        amount=points,
        actor=actor,
        reason=reason,
        source_type=source_type,
        source_id=source_id or str(redemption.pk),
        grace_days=grace_days,
        idempotency_key=key,
    )
    redemption.points_returned += sum(e.amount for e in entries)
    return entries


def _void_issued_code(redemption: Redemption, actor: User, reason: str) -> bool:
    from promotions.services import void_code_for_system

    if not redemption.issued_code_id:
        return False
    return void_code_for_system(code=redemption.issued_code, actor=actor, reason=reason)


def _decide(redemption: Redemption, target: str, *, actor: User, reason: str) -> Redemption:
    _require_perm(actor, "redemptions.approve_redemption")
    locked = _lock(redemption)
    check_transition(Redemption.APPROVAL_TRANSITIONS, locked.approval_status, target, field="approval_status")
    if locked.created_by_id is not None and locked.created_by_id == getattr(actor, "pk", None):
        raise FourEyesRequired("You created this; another approver must decide.")
    locked.approval_status = target
    locked.decided_by = _user_or_none(actor)
    locked.decision_reason = (reason or "").strip()[:255]
    fields = ["approval_status", "decided_by", "decision_reason"]
    if target == Redemption.ApprovalStatus.APPROVED:
        if locked.kind == Redemption.Kind.AWARD:
            locked.award_status = Redemption.AwardStatus.AWARDED
            fields.append("award_status")
        if locked.reward.type == Reward.Type.DISCOUNT_CODE and not locked.issued_code_id:
            locked.issued_code = _issue_code(locked, actor)
            fields.append("issued_code")
    else:
        if locked.points_spent - locked.points_returned > 0:
            give_back(locked, actor=actor, reason=f"{target.capitalize()}: {reason}", key=f"{target}:{locked.pk}")
        _give_stock_back(locked)
        _void_issued_code(locked, actor, reason)
        check_transition(Redemption.STATUS_TRANSITIONS, locked.status, Redemption.Status.CANCELED, field="status")
        locked.status = Redemption.Status.CANCELED
        fields += ["points_returned", "stock_returned", "status"]
        if locked.kind == Redemption.Kind.AWARD:
            locked.award_status = Redemption.AwardStatus.CANCELED
            fields.append("award_status")
    save_with_history(locked, actor=actor, reason=f"{target.capitalize()}: {reason}".strip(": "), update_fields=fields)
    notify_member(member=locked.member, template=f"redemption_{target}", context=_email_context(locked, reason))
    return locked


@transaction.atomic
def approve_redemption(*, redemption: Redemption, actor: User, reason: str = "") -> Redemption:
    return _decide(redemption, Redemption.ApprovalStatus.APPROVED, actor=actor, reason=reason)


@transaction.atomic
def reject_redemption(*, redemption: Redemption, actor: User, reason: str) -> Redemption:
    """Points and stock go back; the member may not redeem that reward again."""
    _require_reason(reason)
    return _decide(redemption, Redemption.ApprovalStatus.REJECTED, actor=actor, reason=reason)


@transaction.atomic
def return_redemption(*, redemption: Redemption, actor: User, reason: str) -> Redemption:
    """Points and stock go back; the member may redeem the reward again."""
    _require_reason(reason)
    return _decide(redemption, Redemption.ApprovalStatus.RETURNED, actor=actor, reason=reason)


def _require_reason(reason: str) -> None:
    if not (reason or "").strip():
        raise InvalidInput("A reason is required.", errors={"reason": ["This field is required."]})


@transaction.atomic
def change_status(*, redemption: Redemption, status: str, actor: User, reason: str = "") -> Redemption:
    """Processing status (pending, processing, completed, canceled, errored). Canceling gives points
    and stock back and voids an unused issued code."""
    _require_perm(actor, "redemptions.change_redemption")
    locked = _lock(redemption)
    check_transition(Redemption.STATUS_TRANSITIONS, locked.status, status, field="status")
    fields = ["status"]
    if status == Redemption.Status.CANCELED:
        if locked.points_spent - locked.points_returned > 0:
            give_back(locked, actor=actor, reason=f"Canceled: {reason}", key=f"cancel:{locked.pk}")
        if locked.fulfillment_status in (None, Redemption.Fulfillment.CONFIRMED_PAID):
            _give_stock_back(locked)
        _void_issued_code(locked, actor, reason or "Canceled")
        fields += ["points_returned", "stock_returned"]
        if locked.kind == Redemption.Kind.AWARD and locked.award_status != Redemption.AwardStatus.CANCELED:
            locked.award_status = Redemption.AwardStatus.CANCELED
            fields.append("award_status")
    locked.status = status
    save_with_history(locked, actor=actor, reason=reason or f"Status → {status}", update_fields=fields)
    return locked


@transaction.atomic
def change_award_status(*, redemption: Redemption, award_status: str, actor: User, reason: str = "") -> Redemption:
    _require_perm(actor, "redemptions.change_redemption")
    locked = _lock(redemption)
    if locked.kind != Redemption.Kind.AWARD:
        raise Conflict("Only awards have an award status.", code="invalid_transition")
    check_transition(Redemption.AWARD_TRANSITIONS, locked.award_status, award_status, field="award_status")
    if award_status == Redemption.AwardStatus.CANCELED:
        return change_status(
            redemption=locked, status=Redemption.Status.CANCELED, actor=actor, reason=reason or "Award canceled"
        )
    locked.award_status = award_status
    save_with_history(locked, actor=actor, reason=reason or f"Award → {award_status}", update_fields=["award_status"])
    return locked


@transaction.atomic
def change_fulfillment(
    *, redemption: Redemption, fulfillment_status: str, actor: User, tracking_ref: str = "", reason: str = ""
) -> Redemption:
    _require_perm(actor, "redemptions.change_fulfillment")
    locked = _lock(redemption)
    if not locked.reward.requires_fulfillment:
        raise Conflict(f"{locked.reward} is not fulfilled by shipping.", code="invalid_transition")
    if locked.status == Redemption.Status.CANCELED or locked.approval_status == Redemption.ApprovalStatus.SUBMITTED:
        raise Conflict("Only live, approved redemptions are fulfilled.", code="invalid_transition")
    check_transition(
        Redemption.FULFILLMENT_TRANSITIONS, locked.fulfillment_status, fulfillment_status, field="fulfillment_status"
    )
    locked.fulfillment_status = fulfillment_status
    fields = ["fulfillment_status"]
    if tracking_ref:
        locked.tracking_ref = tracking_ref[:100]
        fields.append("tracking_ref")
    save_with_history(locked, actor=actor, reason=reason or f"Fulfillment → {fulfillment_status}", update_fields=fields)
    if fulfillment_status in (Redemption.Fulfillment.SHIPPED, Redemption.Fulfillment.DELIVERED):
        notify_member(
            member=locked.member, template=f"redemption_{fulfillment_status}", context=_email_context(locked, reason)
        )
    return locked


def _email_context(r: Redemption, reason: str) -> dict[str, Any]:
    return {
        "reward": r.reward.name,
        "quantity": r.quantity,
        "points": r.points_spent,
        "reason": reason,
        "tracking_ref": r.tracking_ref,
        "code": r.issued_code.code if r.issued_code_id else "",
        "kind": r.get_kind_display().lower(),
    }


def expire_awards(*, now: dt.datetime | None = None) -> int:
    """Unclaimed awards past their expiry are canceled (stock goes back)."""
    now = now or timezone.now()
    expired = 0
    for award in Redemption.objects.filter(
        kind=Redemption.Kind.AWARD,
        expires_at__lte=now,
        award_status__in=[Redemption.AwardStatus.PENDING, Redemption.AwardStatus.AWARDED],
    ).order_by("pk"):
        try:
            with transaction.atomic():
                change_status(redemption=award, status=Redemption.Status.CANCELED, actor=None, reason="Award expired")
        except DomainError:
            logger.exception("Award %s could not expire", award.pk)
            continue
        expired += 1
    return expired


# --- rollbacks -------------------------------------------------------------------------------


class RollbackWindowClosed(BusinessRuleViolation):
    code = "rollback_window_closed"
    default_detail = "The rollback window for this redemption has closed."


def _rollback_policy_checks(
    redemption: Redemption, program, *, points: int | None, exclude: int | None = None, check_window: bool = True
) -> tuple[int, bool]:
    """Window, statuses, amounts and the issued code. Returns (points to return, full)."""
    from loyalty.exceptions import ExceedsSpent

    if redemption.channel == Redemption.Channel.IMPORT:
        raise InvalidTransition("Redemptions imported from the legacy platform are undone there, not here.")
    now = timezone.now()
    if check_window and now - redemption.created_at > dt.timedelta(days=program.rollback_window_days):
        raise RollbackWindowClosed(
            f"Redemptions can be rolled back for {program.rollback_window_days} days; this one is from "
            f"{redemption.created_at:%Y-%m-%d}."
        )
    if redemption.status == Redemption.Status.CANCELED or redemption.status not in program.rollback_statuses:
        raise InvalidTransition(
            f"A {redemption.status} redemption cannot be rolled back.",
            errors={"status": [f"Rollback allowed from: {program.rollback_statuses}."]},
        )
    fulfillment = redemption.fulfillment_status or "none"
    if fulfillment not in program.rollback_fulfillment_statuses:
        raise InvalidTransition(
            f"A {fulfillment.replace('_', ' ')} redemption cannot be rolled back.",
            errors={"fulfillment_status": [f"Rollback allowed from: {program.rollback_fulfillment_statuses}."]},
        )
    pending = (
        Rollback.objects.filter(redemption=redemption, status=Rollback.Status.PENDING_APPROVAL)
        .exclude(pk=exclude)
        .aggregate(total=Sum("points_requested"))["total"]
        or 0
    )
    left = redemption.points_spent - redemption.points_returned - pending
    if points is None:
        if left == 0 and redemption.points_spent > 0:
            if pending:
                raise Conflict(
                    "A rollback of this redemption is already waiting for approval.", code="rollback_pending"
                )
            raise ExceedsSpent("Everything spent on this redemption was already returned.")
        points, full = left, True
    else:
        if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
            raise InvalidInput("points must be a positive whole number.", errors={"points": ["Positive integer."]})
        if points > left:
            raise ExceedsSpent(
                f"Only {left} of the {redemption.points_spent} points spent can still be returned.",
                errors={"points": [f"At most {left}."]},
            )
        full = points == left
        if not full and not program.rollback_partial_allowed:
            raise BusinessRuleViolation("Partial rollbacks are not allowed by the policy.", code="partial_not_allowed")
    if full and redemption.issued_code_id:
        code = Code.objects.get(pk=redemption.issued_code_id)
        if code.uses > 0:
            raise Conflict(
                f"The issued code {code.code} was already used; roll back the code use first.", code="code_already_used"
            )
    return points, full


def _approval_reasons(redemption: Redemption, program, *, reason: str, points: int) -> list[str]:
    why = []
    if reason in (program.rollback_approval_reasons or []):
        why.append(f"reason {reason}")
    threshold = program.rollback_approval_above_points
    if threshold is not None and points > threshold:
        why.append(f"{points} points > {threshold}")
    recent = (
        Rollback.objects.filter(member_id=redemption.member_id, created_at__gte=timezone.now() - dt.timedelta(days=30))
        .exclude(status=Rollback.Status.REJECTED)
        .count()
    )
    if recent >= program.rollback_max_per_member_30_days:
        why.append(f"{recent} rollbacks for this member in 30 days")
    return why


@transaction.atomic
def rollback_redemption(
    *, redemption: Redemption, reason: str, actor: User, points: int | None = None, note: str = ""
) -> Rollback:
    """Undo a redemption in one safe action: points back with their original lots, the issued code
    voided, the redemption canceled (or the partial amount recorded), stock back if nothing shipped,
    and the member told. Where the policy says so it waits for a second person instead."""
    from loyalty.models import ProgramSettings
    from promotions.models import AbuseSignal

    _require_perm(actor, "redemptions.add_rollback")
    if reason not in Rollback.Reason.values:
        raise InvalidInput("Unknown reason.", errors={"reason": [f"One of {Rollback.Reason.values}."]})
    program = ProgramSettings.load()
    locked = _lock(redemption)
    amount, full = _rollback_policy_checks(locked, program, points=points)
    why = _approval_reasons(locked, program, reason=reason, points=amount)
    rollback = Rollback(
        redemption=locked,
        member_id=locked.member_id,
        full=full,
        points_requested=amount,
        reason=reason,
        note=note,
        requested_by=actor,
        status=Rollback.Status.PENDING_APPROVAL if why else Rollback.Status.EXECUTED,
        approval_required_because="; ".join(why),
    )
    save_with_history(rollback, actor=actor, reason=f"Requested: {reason}")
    if any("rollbacks for this member" in w for w in why):
        AbuseSignal.objects.create(
            kind=AbuseSignal.Kind.REPEATED_ROLLBACKS,
            subject_type=AbuseSignal.Subject.MEMBER,
            subject=str(locked.member_id),
            count=Rollback.objects.filter(member_id=locked.member_id).count(),
            window_seconds=30 * 86400,
            detail={"rollback": rollback.pk},
        )
    if why:
        _notify_rollback(rollback, "rollback_requested")
        return rollback
    return _execute_rollback(rollback, locked, program, actor=actor)


def _execute_rollback(rollback: Rollback, redemption: Redemption, program, *, actor: User) -> Rollback:
    entries = []
    if rollback.points_requested:
        entries = give_back(
            redemption,
            actor=actor,
            reason=f"Rollback ({rollback.reason}): {rollback.note}".strip(),
            points=rollback.points_requested,
            source_type="rollback",
            source_id=str(rollback.pk),
            grace_days=program.rollback_expired_lot_grace_days,
            key=f"rollback:{rollback.pk}",
        )
    fields = ["points_returned"]
    if rollback.full:
        rollback.code_voided = _void_issued_code(redemption, actor, f"Rollback #{rollback.pk}")
        if redemption.fulfillment_status in (
            None,
            Redemption.Fulfillment.CONFIRMED_PAID,
            Redemption.Fulfillment.RETURNED_TO_SENDER,
        ):
            _give_stock_back(redemption)
            rollback.stock_restored = redemption.stock_returned
        check_transition(Redemption.STATUS_TRANSITIONS, redemption.status, Redemption.Status.CANCELED, field="status")
        redemption.status = Redemption.Status.CANCELED
        fields += ["status", "stock_returned"]
        if redemption.kind == Redemption.Kind.AWARD:
            redemption.award_status = Redemption.AwardStatus.CANCELED
            fields.append("award_status")
    save_with_history(redemption, actor=actor, reason=f"Rolled back ({rollback.reason})", update_fields=fields)
    rollback.status = Rollback.Status.EXECUTED
    rollback.points_returned = sum(e.amount for e in entries)
    rollback.executed_at = timezone.now()
    save_with_history(rollback, actor=actor, reason="Executed")
    rollback.ledger_entries.set(entries)
    _notify_rollback(rollback, "rollback_executed")
    return rollback


def _notify_rollback(rollback: Rollback, template: str) -> None:
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


def _decide_rollback(rollback: Rollback, actor: User) -> Rollback:
    _require_perm(actor, "redemptions.approve_rollback")
    current = Rollback.objects.get(pk=rollback.pk)
    locked_redemption = _lock(current.redemption)
    locked = Rollback.objects.select_for_update().get(pk=rollback.pk)
    check_transition(Rollback.STATUS_TRANSITIONS, locked.status, Rollback.Status.EXECUTED, field="status")
    if locked.requested_by_id == getattr(actor, "pk", None):
        raise FourEyesRequired("You requested this rollback; another approver must decide.")
    locked.redemption = locked_redemption
    return locked


@transaction.atomic
def approve_rollback(*, rollback: Rollback, actor: User, note: str = "") -> Rollback:
    from loyalty.models import ProgramSettings

    locked = _decide_rollback(rollback, actor)
    program = ProgramSettings.load()
    redemption = locked.redemption
    # Re-check what may have changed while it waited (a code use, a shipment, another rollback).
    points = None if locked.full else locked.points_requested
    # The request was made within the window; everything else is checked again.
    amount, _ = _rollback_policy_checks(redemption, program, points=points, exclude=locked.pk, check_window=False)
    locked.points_requested = amount
    locked.approved_by = actor
    locked.decision_note = note[:255]
    return _execute_rollback(locked, redemption, program, actor=actor)


@transaction.atomic
def reject_rollback(*, rollback: Rollback, actor: User, reason: str) -> Rollback:
    _require_reason(reason)
    _require_perm(actor, "redemptions.approve_rollback")
    locked = Rollback.objects.select_for_update().get(pk=rollback.pk)
    check_transition(Rollback.STATUS_TRANSITIONS, locked.status, Rollback.Status.REJECTED, field="status")
    if locked.requested_by_id == getattr(actor, "pk", None):
        raise FourEyesRequired("You requested this rollback; another approver must decide.")
    locked.status = Rollback.Status.REJECTED
    locked.rejected_by = actor
    locked.decision_note = reason.strip()[:255]
    save_with_history(
        locked, actor=actor, reason=f"Rejected: {reason}", update_fields=["status", "rejected_by", "decision_note"]
    )
    _notify_rollback(locked, "rollback_rejected")
    return locked


# --- legacy import ---------------------------------------------------------------------------


@transaction.atomic
def import_legacy_redemption(
    *,
    member: Member,
    reward: Reward,
    quantity: int,
    points_spent: int,
    status: str,
    created_at: dt.datetime,
    external_ref: str,
    actor: User,
) -> Redemption:
    """Record a redemption made on a legacy platform, WITHOUT a ledger movement.

    The points were spent on the old platform (the migrated balance is already net of them), so no
    entry is written and no stock is taken; the row keeps ``external_ref`` (unique) and its original
    ``created_at``. Such redemptions are undone on the legacy platform, never rolled back here.
    """
    _require_perm(actor, "redemptions.import_redemptions")
    external_ref = (external_ref or "").strip()
    if not external_ref or len(external_ref) > 64:
        raise InvalidInput("external_ref is required (at most 64 characters).", errors={"external_ref": ["Required."]})
    if status not in Redemption.Status.values:
        raise InvalidInput(
            f"Unknown status {status!r}; one of {', '.join(Redemption.Status.values)}.",
            errors={"status": ["Unknown status."]},
        )
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput(f"quantity must be between 1 and {MAX_QUANTITY}.", errors={"quantity": ["Out of range."]})
    if isinstance(points_spent, bool) or not isinstance(points_spent, int) or points_spent < 0:
        raise InvalidInput("points_spent must not be negative.", errors={"points_spent": ["Must be >= 0."]})
    if Redemption.objects.filter(external_ref=external_ref).exists():
        raise InvalidInput(
            f"external_ref {external_ref!r} was already imported.", errors={"external_ref": ["Already imported."]}
        )
    redemption = Redemption(
        kind=Redemption.Kind.REDEMPTION,
        member=member,
        reward=reward,
        quantity=quantity,
        points_spent=points_spent,
        metric=reward.metric,
        status=status,
        channel=Redemption.Channel.IMPORT,
        external_ref=external_ref,
        stock_returned=True,  # no stock was taken here: never give any back
        created_by=_user_or_none(actor),
    )
    try:
        with transaction.atomic():
            save_with_history(redemption, actor=actor, reason=f"Imported from the legacy platform ({external_ref})")
    except IntegrityError as exc:  # a concurrent import of the same reference
        raise InvalidInput(
            f"external_ref {external_ref!r} was already imported.", errors={"external_ref": ["Already imported."]}
        ) from exc
    # created_at is auto_now_add: keep the legacy date on the row and its first history record.
    Redemption.objects.filter(pk=redemption.pk).update(created_at=created_at)
    redemption.history.filter(id=redemption.pk).update(created_at=created_at)
    redemption.created_at = created_at
    return redemption
