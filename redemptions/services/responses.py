"""Redeeming and awarding rewards, and moving them through their lifecycles.

Whatever gives something back (reject, return, cancel, award cancel, expiry) goes through the gate in
``refunds``; what moves a status forward first asks ``check_may_move`` (no move while approval or a
rollback is pending).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.utils import timezone

from loyalty import events
from loyalty.exceptions import (
    BusinessRuleViolation,
    Conflict,
    DomainError,
    InvalidTransition,
    MemberInactive,
)
from loyalty.kernel import (
    SYSTEM,
    Actor,
    history_user,
    insert_without_history,
    outer_service,
    own_transaction,
    record_created,
    require_four_eyes,
    require_perm,
    require_reason,
    require_transition,
    transition,
)
from loyalty.models import LedgerEntry, Member, Reward
from loyalty.notifications import notify_member
from loyalty.selectors import tier_at
from loyalty.services import debit_points_in_transaction, lock_balance
from promotions import codegen
from promotions.models import Code, CodeEvent
from promotions.services import record_code_event
from redemptions.exceptions import NOT_ELIGIBLE, POOL_EXHAUSTED, REWARD_MISCONFIGURED, REWARD_UNAVAILABLE

from ..models import Redemption, RewardCodePool
from .common import check_quantity, email_context, lock_redemption, take_stock
from .refunds import Path, check_may_move, give_back

logger = logging.getLogger(__name__)


def _check_reward(reward: Reward, member: Member, quantity: int) -> None:
    check_quantity(quantity)
    if member.status != Member.Status.ACTIVE:
        raise MemberInactive(f"Member {member.external_id} is {member.status}.")
    now = timezone.now()
    if not reward.is_available(now):
        raise BusinessRuleViolation(f"{reward} is not available now.", code=REWARD_UNAVAILABLE)
    eligible = set(reward.eligible_tiers.values_list("pk", flat=True))
    if eligible:
        tier = tier_at(member, now)
        if tier is None or tier.pk not in eligible:
            raise BusinessRuleViolation(f"{reward} is not available in the member's tier.", code=NOT_ELIGIBLE)
    if Redemption.objects.filter(
        member=member, reward=reward, approval_status=Redemption.ApprovalStatus.REJECTED
    ).exists():
        raise BusinessRuleViolation(
            f"A redemption of {reward} by this member was rejected; it cannot be redeemed again.", code=NOT_ELIGIBLE
        )


def _issue_code(redemption: Redemption, actor: Actor) -> Code:
    """An unused, unassigned code from the reward's campaign pool, or a new one from its pattern."""
    pool = RewardCodePool.objects.select_related("campaign").filter(reward_id=redemption.reward_id).first()
    if pool is None:
        raise Conflict(f"{redemption.reward} has no campaign to issue codes from.", code=REWARD_MISCONFIGURED)
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
            raise Conflict("Could not find a free code; the campaign's pattern is too small.", code=POOL_EXHAUSTED)
    code.assigned_member = redemption.member
    if valid_until and (code.valid_until is None or valid_until < code.valid_until):
        code.valid_until = valid_until
    code.save(update_fields=["assigned_member", "valid_until", "updated_at"])
    record_code_event(
        code, CodeEvent.Kind.ASSIGNED, actor=actor, member=redemption.member, detail={"redemption": redemption.pk}
    )
    return code


def _new_response(
    kind: str, member: Member, reward: Reward, quantity: int, *, actor: Actor, **fields: Any
) -> Redemption:
    """A redemption or an award as the catalogue defines it: in the reward's metric, usable for its
    ``valid_days``, and submitted for approval when the reward requires it."""
    return Redemption(
        kind=kind,
        member=member,
        reward=reward,
        quantity=quantity,
        metric=reward.metric,
        created_by=history_user(actor),
        expires_at=_expiry(reward),
        approval_status=Redemption.ApprovalStatus.SUBMITTED if reward.requires_approval else None,
        **fields,
    )


def _expiry(reward: Reward) -> dt.datetime | None:
    return timezone.now() + dt.timedelta(days=reward.valid_days) if reward.valid_days else None


@outer_service
def redeem_reward(
    *,
    member: Member,
    reward: Reward,
    actor: Actor,
    quantity: int = 1,
    channel: str = Redemption.Channel.API,
) -> Redemption:
    """Spend points on a reward: balance locked first, stock taken atomically, points debited by lot."""
    require_perm(actor, "redemptions.add_redemption")
    _check_reward(reward, member, quantity)
    cost = reward.points * quantity
    balance = lock_balance(member, reward.metric) if cost else None
    take_stock(reward, quantity)
    needs_approval = reward.requires_approval
    redemption = _new_response(
        Redemption.Kind.REDEMPTION, member, reward, quantity, actor=actor, points_spent=cost, channel=channel
    )
    insert_without_history(redemption)  # its ledger entry and code need its id; one history row below
    if cost:
        redemption.ledger_entry = debit_points_in_transaction(
            member=member,
            metric=reward.metric,
            amount=cost,
            kind=LedgerEntry.Kind.REDEEM,
            actor=actor,
            reason=f"Redeemed {reward.name}",
            source_type="redemption",
            source_id=str(redemption.pk),
            idempotency_key=f"redemption:{redemption.pk}",
            locked_balance=balance,
        )
    if reward.type == Reward.Type.DISCOUNT_CODE and not needs_approval:
        redemption.issued_code = _issue_code(redemption, actor)
    record_created(redemption, actor=actor, reason="Redeemed", update_fields=["ledger_entry", "issued_code"])
    events.emit("redemption.created", redemption)
    return redemption


@outer_service
def award_reward(
    *,
    member: Member,
    reward: Reward,
    actor: Actor,
    reason: str,
    quantity: int = 1,
    channel: str = Redemption.Channel.API,
) -> Redemption:
    """Give a reward for free (with a reason)."""
    require_perm(actor, "redemptions.award_reward")
    require_reason(reason)
    _check_reward(reward, member, quantity)
    take_stock(reward, quantity)
    needs_approval = reward.requires_approval
    redemption = _new_response(
        Redemption.Kind.AWARD,
        member,
        reward,
        quantity,
        actor=actor,
        points_spent=0,
        channel=channel,
        reason=reason.strip()[:255],
        award_status=Redemption.AwardStatus.PENDING if needs_approval else Redemption.AwardStatus.AWARDED,
    )
    insert_without_history(redemption)
    issues_code = reward.type == Reward.Type.DISCOUNT_CODE and not needs_approval
    if issues_code:
        redemption.issued_code = _issue_code(redemption, actor)
    record_created(
        redemption, actor=actor, reason=f"Awarded: {reason}", update_fields=["issued_code"] if issues_code else ()
    )
    events.emit("redemption.created", redemption)
    return redemption


def _decide(redemption: Redemption, target: str, *, actor: Actor, reason: str) -> Redemption:
    """Approve, reject or return a submitted redemption or award (never your own: four-eyes)."""
    require_perm(actor, "redemptions.approve_redemption")
    locked = lock_redemption(redemption)
    require_transition(locked, "approval_status", target)
    require_four_eyes(locked.created_by_id, actor, "You created this; another approver must decide.")
    locked.decided_by = history_user(actor)
    locked.decision_reason = (reason or "").strip()[:255]
    fields = ("decided_by", "decision_reason")
    history = f"{target.capitalize()}: {reason}".strip(": ")
    if target == Redemption.ApprovalStatus.APPROVED:
        check_may_move(locked, field="approval_status", deciding_approval=True)
        moves = {"approval_status": target}
        update = list(fields)
        if locked.kind == Redemption.Kind.AWARD:
            moves["award_status"] = Redemption.AwardStatus.AWARDED
        if locked.reward.type == Reward.Type.DISCOUNT_CODE and not locked.issued_code_id:
            locked.issued_code = _issue_code(locked, actor)
            update.append("issued_code")
        transition(locked, moves, actor=actor, reason=history, also=update)
    else:
        path = Path.REJECT if target == Redemption.ApprovalStatus.REJECTED else Path.RETURN
        give_back(
            locked, path=path, actor=actor, history_reason=history, fields=fields, moves={"approval_status": target}
        )
    notify_member(member=locked.member, template=f"redemption_{target}", context=email_context(locked, reason))
    events.emit("redemption.approval_changed", locked)
    return locked


@outer_service
def approve_redemption(*, redemption: Redemption, actor: Actor, reason: str = "") -> Redemption:
    return _decide(redemption, Redemption.ApprovalStatus.APPROVED, actor=actor, reason=reason)


@outer_service
def reject_redemption(*, redemption: Redemption, actor: Actor, reason: str) -> Redemption:
    """Points and stock go back; the member may not redeem that reward again."""
    require_reason(reason)
    return _decide(redemption, Redemption.ApprovalStatus.REJECTED, actor=actor, reason=reason)


@outer_service
def return_redemption(*, redemption: Redemption, actor: Actor, reason: str) -> Redemption:
    """Points and stock go back; the member may redeem the reward again."""
    require_reason(reason)
    return _decide(redemption, Redemption.ApprovalStatus.RETURNED, actor=actor, reason=reason)


@outer_service
def change_status(*, redemption: Redemption, status: str, actor: Actor, reason: str = "") -> Redemption:
    """Processing status (pending, processing, completed, canceled, errored).

    Canceling is a full rollback by another name: it goes through the gate with the rollback
    policy and gives back everything left (refused where the policy needs a second person)."""
    require_perm(actor, "redemptions.change_redemption")
    locked = lock_redemption(redemption)
    require_transition(locked, "status", status)
    if status == Redemption.Status.CANCELED:
        path = Path.AWARD_CANCEL if locked.kind == Redemption.Kind.AWARD else Path.CANCEL
        give_back(locked, path=path, actor=actor, note=reason, history_reason=reason or "Status → canceled")
        return locked
    check_may_move(locked)
    transition(locked, "status", status, actor=actor, reason=reason or f"Status → {status}")
    events.emit("redemption.status_changed", locked)
    return locked


@outer_service
def change_award_status(*, redemption: Redemption, award_status: str, actor: Actor, reason: str = "") -> Redemption:
    """Award status (pending, awarded, claimed, canceled); canceling goes through the gate."""
    require_perm(actor, "redemptions.change_redemption")
    locked = lock_redemption(redemption)
    if locked.kind != Redemption.Kind.AWARD:
        raise InvalidTransition("Only awards have an award status.")
    require_transition(locked, "award_status", award_status)
    if award_status == Redemption.AwardStatus.CANCELED:
        give_back(locked, path=Path.AWARD_CANCEL, actor=actor, note=reason, history_reason=reason or "Award canceled")
        return locked
    check_may_move(locked, field="award_status")
    transition(locked, "award_status", award_status, actor=actor, reason=reason or f"Award → {award_status}")
    events.emit("redemption.status_changed", locked)
    return locked


@outer_service
def change_fulfillment(
    *, redemption: Redemption, fulfillment_status: str, actor: Actor, tracking_ref: str = "", reason: str = ""
) -> Redemption:
    require_perm(actor, "redemptions.change_fulfillment")
    locked = lock_redemption(redemption)
    if not locked.reward.requires_fulfillment:
        raise InvalidTransition(f"{locked.reward} is not fulfilled by shipping.")
    if locked.status == Redemption.Status.CANCELED:
        raise InvalidTransition("Only live, approved redemptions are fulfilled.")
    check_may_move(locked, field="fulfillment_status")
    transition(
        locked,
        "fulfillment_status",
        fulfillment_status,
        actor=actor,
        reason=reason or f"Fulfillment → {fulfillment_status}",
        changes={"tracking_ref": tracking_ref[:100]} if tracking_ref else None,
    )
    if fulfillment_status in (Redemption.Fulfillment.SHIPPED, Redemption.Fulfillment.DELIVERED):
        notify_member(
            member=locked.member, template=f"redemption_{fulfillment_status}", context=email_context(locked, reason)
        )
    events.emit("redemption.fulfillment_changed", locked)
    return locked


def expire_awards(*, now: dt.datetime | None = None) -> int:
    """Unclaimed awards past their expiry are canceled through the gate (stock back, unused code
    voided). Awards waiting for approval wait for the approver; one whose code was used or that
    shipped is skipped (it was received).

    Runs its own transactions (durable), one per award.
    """
    now = now or timezone.now()
    expired = 0
    for award in (
        Redemption.objects.filter(
            kind=Redemption.Kind.AWARD,
            expires_at__lte=now,
            award_status__in=[Redemption.AwardStatus.PENDING, Redemption.AwardStatus.AWARDED],
        )
        .exclude(approval_status=Redemption.ApprovalStatus.SUBMITTED)
        .order_by("pk")
    ):
        try:
            with own_transaction():
                locked = lock_redemption(award)
                require_transition(locked, "award_status", Redemption.AwardStatus.CANCELED)
                give_back(locked, path=Path.AWARD_EXPIRY, actor=SYSTEM, history_reason="Award expired")
        except DomainError as exc:
            logger.info("Award %s was not expired: %s (%s)", award.pk, exc.detail, exc.code)
            continue
        expired += 1
    return expired
