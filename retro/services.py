"""Retro claims: submission, four-eyes approval and point-in-time processing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from loyalty import events
from loyalty.exceptions import (
    ALREADY_RETURNED,
    BusinessRuleViolation,
    Conflict,
    MemberInactive,
)
from loyalty.kernel import (
    SYSTEM,
    Actor,
    history_user,
    outer_service,
    own_transaction,
    require_four_eyes,
    require_perm,
    require_reason,
    save_unique,
    transition,
)
from loyalty.models import LedgerEntry, Member, ProgramSettings, Transaction
from loyalty.notifications import notify_member
from loyalty.outbox import enqueue_on_commit
from loyalty.services import earn_for_transaction, kept_amount, preview_earning
from retro.exceptions import ALREADY_CLAIMED, BEFORE_ENROLMENT, LIMIT_REACHED, RETRO_DISABLED, RETRO_WINDOW_CLOSED

from .models import RetroClaim


def _already_claimed(transaction_: Transaction) -> Conflict:
    return Conflict(
        f"Bill {transaction_.external_id} already belongs to a member or a live claim.",
        code=ALREADY_CLAIMED,
        errors={"transaction": ["Already claimed."]},
    )


@outer_service
def submit_retro_claim(
    *,
    transaction_: Transaction,
    member: Member,
    actor: Actor,
    channel: str = RetroClaim.Channel.API,
    note: str = "",
) -> RetroClaim:
    """File a claim with a preview computed by the rules and tier of the purchase date."""
    require_perm(actor, "retro.add_retroclaim")
    program = ProgramSettings.load()
    now = timezone.now()
    if not program.retro_enabled:
        raise BusinessRuleViolation("Retro claims are switched off for this program.", code=RETRO_DISABLED)
    if member.status != Member.Status.ACTIVE:
        raise MemberInactive(f"Member {member.external_id} is {member.status}.")
    txn = Transaction.objects.select_for_update().get(pk=transaction_.pk)
    # The member row serializes this member's claims: the 30-day count below and the insert that
    # follows are one step, so concurrent claims cannot all pass the limit.
    Member.objects.select_for_update().only("pk").get(pk=member.pk)
    if (
        txn.member_id is not None
        or RetroClaim.objects.filter(transaction=txn, status__in=RetroClaim.LIVE_STATUSES).exists()
    ):
        raise _already_claimed(txn)
    if kept_amount(txn) <= 0:
        raise Conflict(f"Bill {txn.external_id} was returned.", code=ALREADY_RETURNED)
    if now - txn.occurred_at > dt.timedelta(days=program.retro_window_days):
        raise BusinessRuleViolation(
            f"Purchases can be claimed up to {program.retro_window_days} days later; this one is from "
            f"{txn.occurred_at:%Y-%m-%d}.",
            code=RETRO_WINDOW_CLOSED,
        )
    if txn.occurred_at < member.enrolled_at - dt.timedelta(hours=program.retro_enrolment_buffer_hours):
        raise BusinessRuleViolation(
            f"The purchase was made before the member enrolled ({member.enrolled_at:%Y-%m-%d}).",
            code=BEFORE_ENROLMENT,
        )
    recent = (
        RetroClaim.objects.filter(member=member, created_at__gte=now - dt.timedelta(days=30))
        .exclude(status=RetroClaim.Status.REJECTED)
        .count()
    )
    if recent >= program.retro_max_claims_per_30_days:
        raise BusinessRuleViolation(
            f"The member already filed {recent} claims in the last 30 days.", code=LIMIT_REACHED
        )
    # What the customer kept: returns before processing are taken off again when it is processed.
    preview = preview_earning(
        amount=kept_amount(txn), occurred_at=txn.occurred_at, member=member, channel=txn.channel, store=txn.store
    )
    claim = RetroClaim(
        transaction=txn,
        member=member,
        requested_by=actor,
        channel=channel,
        note=note,
        preview=preview,
        preview_points=preview["points"],
    )
    # A concurrent twin fails on the unique "one live claim" index.
    save_unique(claim, actor=actor, reason="Claim filed", duplicate=_already_claimed(txn))
    threshold = program.retro_auto_approve_below_points
    if threshold is not None and preview["points"] < threshold:
        claim.auto_approved = True
        _approve(claim, actor=SYSTEM, reason=f"Auto-approved: preview {preview['points']} < {threshold} points")
    events.emit("retro_claim.submitted", claim)
    return claim


def _approve(claim: RetroClaim, *, actor: Actor, reason: str) -> None:
    transition(
        claim,
        "status",
        RetroClaim.Status.APPROVED,
        actor=actor,
        reason=reason,
        changes={"approved_by": history_user(actor), "approved_at": timezone.now(), "error": ""},
        also=("auto_approved",),
    )
    from .tasks import process_retro_claim

    enqueue_on_commit(process_retro_claim, claim.pk)


def _for_decision(claim: RetroClaim, actor: Actor, refusal: str, *, reason: str | None = None) -> RetroClaim:
    """The claim locked for an approver's decision: the permission (and the reason, if one is
    needed) first, then the lock, then four-eyes (never on a claim they filed: ``refusal``)."""
    require_perm(actor, "retro.approve_retroclaim")
    if reason is not None:
        require_reason(reason)
    locked = RetroClaim.objects.select_for_update().get(pk=claim.pk)
    require_four_eyes(locked.requested_by_id, actor, refusal)
    return locked


@outer_service
def approve_retro_claim(*, claim: RetroClaim, actor: Actor) -> RetroClaim:
    """Four-eyes: an Approver who did not file the claim. Processing is queued after commit."""
    claim = _for_decision(claim, actor, "You filed this claim; another approver must approve it.")
    _approve(claim, actor=actor, reason="Approved" if claim.status == RetroClaim.Status.SUBMITTED else "Retried")
    return claim


@outer_service
def reject_retro_claim(*, claim: RetroClaim, actor: Actor, reason: str) -> RetroClaim:
    claim = _for_decision(claim, actor, "You filed this claim; another approver must decide on it.", reason=reason)
    transition(
        claim,
        "status",
        RetroClaim.Status.REJECTED,
        actor=actor,
        reason=f"Rejected: {reason}",
        changes={"rejected_by": actor, "rejection_reason": reason.strip()[:255]},
    )
    return claim


def process_retro_claim(*, claim_id: int) -> dict[str, Any]:
    """Credit an approved claim exactly once, by the rules and tier of the purchase date, on what
    the customer kept of the bill now (a return may have landed since the preview; a bill returned
    in full fails the claim with ``already_returned``).

    Safe to run twice or after a crash: it locks the claim, re-checks its status, and the ledger
    credit carries an idempotency key tied to the claim. Locks the claim before the balance rows;
    nothing else locks a claim, so the order cannot deadlock.

    Runs its own transactions (durable): one for the credit, one to mark a failure.
    """
    try:
        with own_transaction():
            claim = (
                RetroClaim.objects.select_for_update(of=("self",))
                .select_related("member", "approved_by")
                .get(pk=claim_id)
            )
            if claim.status != RetroClaim.Status.APPROVED:
                return {"claim": claim_id, "skipped": claim.status}
            txn = Transaction.objects.select_for_update().get(pk=claim.transaction_id)
            if txn.member_id is not None:
                raise _already_claimed(txn)
            breakdown = earn_for_transaction(
                transaction_=txn,
                member=claim.member,
                actor=claim.approved_by or SYSTEM,
                kind=LedgerEntry.Kind.RETRO,
                reason=f"Retro claim #{claim.pk}",
                idempotency_prefix=f"retro:{claim.pk}",
            )
            first_metric = min(breakdown["points_by_metric"], default=None)
            entry = (
                LedgerEntry.objects.filter(idempotency_key=f"retro:{claim.pk}:{first_metric}").first()
                if first_metric
                else None
            )
            transition(
                claim,
                "status",
                RetroClaim.Status.PROCESSED,
                actor=claim.approved_by or SYSTEM,
                reason="Processed",
                changes={
                    "processed_at": timezone.now(),
                    "points_awarded": breakdown["points"],
                    "breakdown": breakdown,
                    "ledger_entry": entry,
                    "attempts": claim.attempts + 1,
                },
            )
            notify_member(
                member=claim.member,
                template="retro_processed",
                context={
                    "points": breakdown["points"],
                    "bill": txn.external_id,
                    "occurred_on": txn.occurred_at.date().isoformat(),
                },
            )
            events.emit("retro_claim.processed", claim)
            return {"claim": claim_id, "points": breakdown["points"]}
    except (BusinessRuleViolation, Conflict) as exc:
        _mark_failed(claim_id, exc.detail)
        return {"claim": claim_id, "failed": exc.code}


@outer_service
def _mark_failed(claim_id: int, error: str) -> None:
    claim = RetroClaim.objects.select_for_update().get(pk=claim_id)
    if claim.status != RetroClaim.Status.APPROVED:
        return
    transition(
        claim, "status", RetroClaim.Status.FAILED, actor=SYSTEM, reason="Processing failed", changes={"error": error}
    )
