"""Trackers and tier qualification over the program's periods."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from loyalty.kernel import (
    SYSTEM,
    Actor,
    own_transaction,
)

from ..models import (
    Member,
    MemberTracker,
    ProgramSettings,
    Tier,
    TierMembership,
)
from .members import change_tier_in_transaction


def period_bounds(at: dt.datetime, months: int | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The qualification period containing ``at``, in the program's local time zone.

    No transaction: it writes nothing.
    """
    months = months or ProgramSettings.load().qualification_period_months
    local = at.astimezone(ZoneInfo(settings.TIME_ZONE))
    first_month = ((local.month - 1) // months) * months + 1
    start = local.replace(month=first_month, day=1, hour=0, minute=0, second=0, microsecond=0)
    end_month = first_month + months
    end = start.replace(year=start.year + (end_month - 1) // 12, month=(end_month - 1) % 12 + 1)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def track_purchase(
    *, member: Member, spend: Decimal, purchases: int, actor: Actor, evaluate: bool = True
) -> MemberTracker:
    """Count a purchase (or a return) in the tracker of the period **now** (processing time).

    Building block: the caller holds the transaction.
    """
    start, end = period_bounds(timezone.now())
    moves = {"spend": Greatest(F("spend") + spend, Decimal(0)), "purchases": Greatest(F("purchases") + purchases, 0)}
    # The period's tracker usually exists: one UPDATE; the first purchase of a period creates it.
    if not MemberTracker.objects.filter(member=member, period_start=start).update(**moves):
        tracker, _ = MemberTracker.objects.get_or_create(
            member=member, period_start=start, defaults={"period_end": end}
        )
        MemberTracker.objects.filter(pk=tracker.pk).update(**moves)
    tracker = MemberTracker.objects.get(member=member, period_start=start)
    if evaluate:
        upgrade_if_qualified(member=member, tracker=tracker, actor=actor)
    return tracker


def qualified_tier(spend: Decimal, purchases: int, tiers: list[Tier] | None = None) -> Tier | None:
    """The best tier whose thresholds (every non-zero one) are met.

    No transaction: it writes nothing.
    """
    best = None
    for tier in tiers if tiers is not None else Tier.objects.order_by("rank"):
        if spend >= tier.spend_threshold and purchases >= tier.purchase_threshold:
            best = tier
    return best


def upgrade_if_qualified(*, member: Member, tracker: MemberTracker, actor: Actor) -> TierMembership | None:
    """Building block: the caller holds the transaction."""
    tiers = list(Tier.objects.order_by("rank"))
    target = qualified_tier(tracker.spend, tracker.purchases, tiers)
    member.refresh_from_db(fields=["tier"])
    current = next((t for t in tiers if t.pk == member.tier_id), None)  # from the list: no query
    if current is not None:
        member.tier = current
    current_rank = member.tier.rank if member.tier_id else -1
    if target is None or target.rank <= current_rank:
        return None
    return change_tier_in_transaction(
        member=member,
        tier=target,
        actor=actor,
        cause=TierMembership.Cause.QUALIFICATION,
        check_permission=False,
        reason=f"Qualified in the period from {tracker.period_start:%Y-%m-%d}: spend {tracker.spend}, "
        f"{tracker.purchases} purchases",
    )


def requalify_tiers(*, now: dt.datetime | None = None, batch_size: int = 500) -> int:
    """At period end, move members down to what they earned (previous or current period, whichever
    is better). Members whose tier was set during the current period keep it. Idempotent.

    Runs its own transactions (durable), one per member.
    """
    now = now or timezone.now()
    start, _ = period_bounds(now)
    prev_start, _ = period_bounds(start - dt.timedelta(seconds=1))
    lowest = Tier.objects.order_by("rank").first()
    if lowest is None:
        return 0
    moved = 0
    candidates = Member.objects.filter(tier__rank__gt=lowest.rank, status=Member.Status.ACTIVE).order_by("pk")
    last_pk = 0
    while True:
        batch = list(candidates.filter(pk__gt=last_pk).select_related("tier")[:batch_size])
        if not batch:
            return moved
        last_pk = batch[-1].pk
        trackers = {
            (t.member_id, t.period_start): t
            for t in MemberTracker.objects.filter(member__in=batch, period_start__in=[start, prev_start])
        }
        for member in batch:
            since = (
                TierMembership.objects.filter(member=member, valid_to__isnull=True)
                .values_list("valid_from", flat=True)
                .first()
            )
            if since is not None and since >= start:
                continue
            earned = [
                qualified_tier(t.spend, t.purchases)
                for t in (trackers.get((member.pk, prev_start)), trackers.get((member.pk, start)))
                if t
            ]
            keep = max([t for t in earned if t] + [lowest], key=lambda t: t.rank)
            if keep.rank < member.tier.rank:
                with own_transaction():
                    change_tier_in_transaction(
                        member=member,
                        tier=keep,
                        actor=SYSTEM,
                        cause=TierMembership.Cause.REQUALIFICATION,
                        check_permission=False,
                        reason=f"Period ended {start:%Y-%m-%d}: qualified for {keep.code} only",
                    )
                moved += 1
