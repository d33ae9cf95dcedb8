"""Members and their tier history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from loyalty.exceptions import ALREADY_IN_TIER, TIER_HISTORY_CONFLICT, TIER_HISTORY_OVERLAP
from loyalty.kernel import (
    Actor,
    history_user,
    outer_service,
    require_perm,
    require_reason,
    save_unique,
    save_with_history,
    transition,
)

from .. import events
from ..exceptions import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    MemberInactive,
)
from ..models import Member, Tier, TierMembership
from .insight import reopen_days


@outer_service
def enroll_member(
    *,
    external_id: str,
    email: str = "",
    name: str = "",
    phone: str = "",
    tier: Tier | None = None,
    enrolled_at: dt.datetime | None = None,
    marketing_opt_in: bool = True,
    actor: Actor,
    reason: str = "Enrolment",
) -> Member:
    """Create a member in the given tier (or the lowest one) with an opening tier interval."""
    external_id = (external_id or "").strip()
    if not external_id:
        raise InvalidInput("external_id is required.", errors={"external_id": ["This field is required."]})
    taken = AlreadyExists(
        f"A member with external_id {external_id!r} already exists.", errors={"external_id": ["Already in use."]}
    )
    if Member.objects.filter(external_id=external_id).exists():
        raise taken
    now = timezone.now()
    tier = tier or Tier.objects.order_by("rank").first()
    member = Member(
        external_id=external_id,
        email=email,
        name=name,
        phone=phone,
        tier=tier,
        enrolled_at=enrolled_at or now,
        marketing_opt_in=marketing_opt_in,
    )
    save_unique(member, actor=actor, reason=reason, duplicate=taken)  # a concurrent enrolment won the race
    if tier is not None:
        membership = TierMembership(
            member=member,
            tier=tier,
            valid_from=member.enrolled_at,
            cause=TierMembership.Cause.ENROLMENT,
            reason=reason,
            changed_by=history_user(actor),
        )
        save_with_history(membership, actor=actor, reason=reason)
    events.emit("member.enrolled", member)
    return member


@outer_service
def update_member(*, member: Member, actor: Actor, reason: str = "Profile update", **fields: Any) -> Member:
    """Change profile fields and, through the transition table, the status."""
    allowed = {"email", "name", "phone", "status", "marketing_opt_in"}
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidInput(f"Cannot change {', '.join(sorted(unknown))}.")
    member = Member.objects.select_for_update().get(pk=member.pk)
    changed = {name: value for name, value in fields.items() if getattr(member, name) != value}
    status = changed.pop("status", None)
    if status is not None:
        transition(member, "status", status, actor=actor, reason=reason, changes=changed)
    elif changed:
        for name, value in changed.items():
            setattr(member, name, value)
        save_with_history(member, actor=actor, reason=reason, update_fields=list(changed))
    return member


def change_tier_in_transaction(
    *,
    member: Member,
    tier: Tier,
    actor: Actor,
    reason: str,
    cause: str = TierMembership.Cause.MANUAL,
    check_permission: bool = True,
) -> TierMembership:
    """Move a member to ``tier`` from now on: close the open interval, open a new one.

    Never backdated, so no earning already computed can change.

    Building block: the caller holds the transaction (``change_tier`` is the outer service).
    in_transaction()
    """
    if cause == TierMembership.Cause.MANUAL and check_permission:
        require_perm(actor, "loyalty.change_member_tier")
    require_reason(reason)
    member = Member.objects.select_for_update().get(pk=member.pk)
    if member.status == Member.Status.CLOSED:
        raise MemberInactive("A closed member's tier cannot change.")
    now = timezone.now()
    current = TierMembership.objects.filter(member=member, valid_to__isnull=True).first()
    if current is not None:
        if current.tier_id == tier.pk:
            raise Conflict(f"The member is already {tier}.", code=ALREADY_IN_TIER)
        if current.valid_from > now:
            raise Conflict("The current tier interval starts in the future.", code=TIER_HISTORY_CONFLICT)
        current.valid_to = now
        save_with_history(current, actor=actor, reason=reason, update_fields=["valid_to"])
    _check_no_overlap(member, now, None)
    membership = TierMembership(
        member=member, tier=tier, valid_from=now, cause=cause, reason=reason, changed_by=history_user(actor)
    )
    save_with_history(membership, actor=actor, reason=reason)
    previous = member.tier
    member.tier = tier
    save_with_history(member, actor=actor, reason=f"Tier → {tier.code}: {reason}", update_fields=["tier"])
    events.emit("member.tier_changed", member, extra={"previous_tier": getattr(previous, "code", None), "cause": cause})
    return membership


@outer_service
def change_tier(**kwargs: Any) -> TierMembership:
    """Outer service: runs ``change_tier_in_transaction`` (same arguments) in its own transaction."""
    return change_tier_in_transaction(**kwargs)


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
        raise Conflict("Tier history intervals may not overlap.", code=TIER_HISTORY_OVERLAP)


@outer_service
def record_tier_interval(
    *, member: Member, tier: Tier, valid_from: dt.datetime, valid_to: dt.datetime | None, actor: Actor, reason: str
) -> TierMembership:
    """Import one historical interval (e.g. from a legacy platform); refuses overlaps."""
    require_perm(actor, "loyalty.change_member_tier")
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
        changed_by=history_user(actor),
    )
    save_with_history(membership, actor=actor, reason=reason)
    # Redemptions by tier count the tier at the time: the days this interval covers are recomputed.
    reopen_days(valid_from, valid_to)
    previous = member.tier
    if valid_to is None:
        member.tier = tier
        save_with_history(member, actor=actor, reason=reason, update_fields=["tier"])
    if member.tier != previous:
        events.emit(
            "member.tier_changed", member, extra={"previous_tier": getattr(previous, "code", None), "cause": "import"}
        )
    return membership
