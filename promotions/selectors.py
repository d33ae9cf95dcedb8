"""Reads for codes: views for the evaluator, the dispute timeline, analytics."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, Sum, Value
from django.utils import timezone

from loyalty.models import Member
from loyalty.replica import reporting
from loyalty.selectors import tier_at

from .engine import CampaignView, CodeView, MemberView
from .models import Campaign, CampaignMemberUsage, Code, CodeBatch, CodeEvent, CodeRedemption


def campaign_view(
    c: Campaign, tiers: frozenset[str] | None = None, segments: frozenset[str] | None = None
) -> CampaignView:
    return CampaignView(
        id=c.pk,
        kind=c.kind,
        value=c.value,
        status=c.status,
        starts_at=c.starts_at,
        ends_at=c.ends_at,
        max_redemptions=c.max_redemptions,
        redemptions_count=c.redemptions_count,
        max_discount_total=c.max_discount_total,
        discount_total=c.discount_total,
        per_member_limit=c.per_member_limit,
        eligible_tiers=tiers if tiers is not None else frozenset(c.eligible_tiers.values_list("code", flat=True)),
        eligible_segments=segments
        if segments is not None
        else frozenset(c.eligible_segments.values_list("code", flat=True)),
        min_order_amount=c.min_order_amount,
        channels=tuple(c.channels or ()),
        stacking=c.stacking,
        stack_group=c.stack_group,
        max_codes_per_order=c.max_codes_per_order,
    )


def eligibility(campaign_ids: list[int]) -> dict[int, tuple[frozenset[str], frozenset[str]]]:
    """Tier and segment codes of several campaigns in one query (a UNION), not two per campaign."""
    tiers = Campaign.eligible_tiers.through.objects.filter(campaign_id__in=campaign_ids)
    segments = Campaign.eligible_segments.through.objects.filter(campaign_id__in=campaign_ids)
    rows = (
        tiers.annotate(kind=Value("t"))
        .values_list("campaign_id", "kind", "tier__code")
        .union(segments.annotate(kind=Value("s")).values_list("campaign_id", "kind", "segment__code"), all=True)
    )
    found: dict[int, tuple[set[str], set[str]]] = {cid: (set(), set()) for cid in campaign_ids}
    for cid, kind, code in rows:
        found[cid][0 if kind == "t" else 1].add(code)
    return {cid: (frozenset(t), frozenset(s)) for cid, (t, s) in found.items()}


def code_views(codes: list[Code]) -> dict[str, CodeView]:
    eligible = eligibility(sorted({c.campaign_id for c in codes})) if codes else {}
    campaigns: dict[int, CampaignView] = {}
    for code in codes:
        if code.campaign_id not in campaigns:
            campaigns[code.campaign_id] = campaign_view(code.campaign, *eligible[code.campaign_id])
    return {
        c.normalized: CodeView(
            id=c.pk,
            code=c.normalized,
            status=c.status,
            uses=c.uses,
            max_uses=c.max_uses,
            campaign=campaigns[c.campaign_id],
            valid_from=c.valid_from,
            valid_until=c.valid_until,
            assigned_member_id=c.assigned_member_id,
        )
        for c in codes
    }


def member_view(member: Member | None, campaign_ids: list[int]) -> MemberView | None:
    if member is None:
        return None
    tier = tier_at(member, timezone.now())
    usage = dict(
        CampaignMemberUsage.objects.filter(member=member, campaign_id__in=campaign_ids).values_list(
            "campaign_id", "uses"
        )
    )
    return MemberView(
        id=member.pk,
        tier=tier.code if tier else None,
        segments=frozenset(member.segments.values_list("code", flat=True)),
        usage=usage,
    )


def code_timeline(code: Code) -> list[dict[str, Any]]:
    """Everything that happened to a code, oldest first: for disputes."""
    now = timezone.now()
    events: list[dict[str, Any]] = []
    batch: CodeBatch | None = code.batch
    events.append(
        {
            "at": code.created_at,
            "kind": "generated",
            "who": (batch.created_by.get_username() if batch and batch.created_by else None),
            "detail": {"batch": batch.pk if batch else None, "campaign": code.campaign_id},
        }
    )
    if code.valid_from and code.valid_from <= now:
        events.append({"at": code.valid_from, "kind": "released", "who": None, "detail": {}})
    for e in code.events.select_related("actor", "member").order_by("created_at", "id"):
        events.append(
            {
                "at": e.created_at,
                "kind": e.kind,
                "result": e.result or None,
                "who": e.client or (e.actor.get_username() if e.actor else None),
                "ip": e.ip,
                "member": e.member.external_id if e.member else None,
                "order_id": e.order_id or None,
                "detail": e.detail,
            }
        )
    if code.valid_until and code.valid_until <= now:
        events.append({"at": code.valid_until, "kind": "expired", "who": None, "detail": {}})
    events.sort(key=lambda e: e["at"])
    return events


def campaign_stats(campaign: Campaign) -> dict[str, Any]:
    """A report: read from the replica when there is one (loyalty/replica.py)."""
    codes = reporting(Code.objects.filter(campaign=campaign)).aggregate(
        total=Count("id"),
        used=Count("id", filter=Q(uses__gt=0)),
        void=Count("id", filter=Q(status="void")),
        expired=Count("id", filter=Q(status="expired")),
    )
    validations = reporting(CodeEvent.objects.filter(code__campaign=campaign, kind=CodeEvent.Kind.VALIDATED)).aggregate(
        attempts=Count("id"), failed=Count("id", filter=~Q(result="valid"))
    )
    uses = reporting(CodeRedemption.objects.filter(campaign=campaign, status="applied")).aggregate(
        n=Count("id"), discount=Sum("discount"), points=Sum("bonus_points")
    )
    return {
        "codes": codes,
        "validations": validations,
        "redemptions": uses["n"],
        "discount_total": uses["discount"] or 0,
        "bonus_points": uses["points"] or 0,
        "redemption_rate": (codes["used"] / codes["total"]) if codes["total"] else 0,
    }
