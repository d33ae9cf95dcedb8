"""Reads for codes: views for the evaluator, the dispute timeline, analytics."""

from __future__ import annotations

import datetime as dt
import statistics
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import (
    Aggregate,
    Avg,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from loyalty.insight import Period
from loyalty.models import Member, ProgramSettings, Transaction
from loyalty.replica import reporting
from loyalty.selectors import tier_at

from .engine import CampaignView, CodeView, MemberView
from .models import AbuseSignal, Campaign, CampaignMemberUsage, Code, CodeBatch, CodeEvent, CodeRedemption


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


# --- the report and the dashboard (registered in promotions/insight.py) -----------------------


class _Median(Aggregate):
    """PostgreSQL's percentile_cont(0.5): the median of an interval, computed in the database."""

    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()


def _release_to_use():
    """The use's time less its code's release, the code read by primary key per use: a join let
    the planner hash the whole code table (a million rows, ~180 ms) for a few thousand uses."""
    released = (
        Code.objects.filter(pk=OuterRef("code_id")).annotate(at=Coalesce("valid_from", "created_at")).values("at")
    )
    return ExpressionWrapper(F("created_at") - Subquery(released[:1]), output_field=DurationField())


def _median_delays(uses) -> dict[int, dt.timedelta]:
    """Per campaign: the median time from a code's release (or creation) to its use."""
    if connection.vendor == "postgresql":
        rows = uses.values("campaign_id").annotate(m=_Median(_release_to_use())).order_by()
        return {r["campaign_id"]: r["m"] for r in rows if r["m"] is not None}
    delays: dict[int, list[dt.timedelta]] = {}
    for campaign_id, used_at, valid_from, created_at in uses.values_list(
        "campaign_id", "created_at", "code__valid_from", "code__created_at"
    ):
        delays.setdefault(campaign_id, []).append(used_at - (valid_from or created_at))
    return {k: statistics.median(v) for k, v in delays.items()}


def _money(value) -> str | None:
    return None if value is None else str(Decimal(value).quantize(Decimal("0.01")))


def report_campaigns(period: Period, *, limit: int = 50) -> list[dict[str, Any]]:
    """Per campaign (the newest ``limit`` that are not drafts, plus any used in the range).

    ``codes``/``used`` are the codes' state now; ``redemptions``, ``discount_total`` and the median
    time from release to use count the code uses in the range.
    """
    uses = CodeRedemption.objects.filter(period.within())
    applied = uses.filter(status=CodeRedemption.Status.APPLIED)
    per_campaign = {
        r["campaign_id"]: r
        for r in applied.values("campaign_id").annotate(n=Count("id"), discount=Sum("discount")).order_by()
    }
    active = (
        Campaign.objects.exclude(status=Campaign.Status.DRAFT)
        .filter(Q(starts_at__isnull=True) | Q(starts_at__lt=period.end_at))
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=period.start_at))
    )
    ids = list(active.order_by("-id").values_list("id", flat=True)[:limit])
    ids = sorted(set(ids) | set(per_campaign), reverse=True)
    # Two index-only counts (code_campaign, and the partial code_campaign_used), not a heap scan
    # of every code: the total per campaign and the codes used at least once.
    totals = dict(
        Code.objects.filter(campaign_id__in=ids)
        .values("campaign_id")
        .annotate(n=Count("campaign_id"))
        .order_by()
        .values_list("campaign_id", "n")
    )
    used_counts = dict(
        Code.objects.filter(campaign_id__in=ids, uses__gt=0)
        .values("campaign_id")
        .annotate(n=Count("campaign_id"))
        .order_by()
        .values_list("campaign_id", "n")
    )
    codes = {cid: {"total": totals.get(cid, 0), "used": used_counts.get(cid, 0)} for cid in ids}
    medians = _median_delays(applied.filter(campaign_id__in=ids))
    currency = ProgramSettings.load().currency
    out = []
    for campaign in Campaign.objects.filter(id__in=ids).order_by("-id"):
        c = codes.get(campaign.pk, {"total": 0, "used": 0})
        used = per_campaign.get(campaign.pk, {"n": 0, "discount": None})
        median = medians.get(campaign.pk)
        out.append(
            {
                "id": campaign.pk,
                "name": campaign.name,
                "status": campaign.status,
                "codes": c["total"],
                "used": c["used"],
                "redemption_rate": round(c["used"] / c["total"], 4) if c["total"] else 0.0,
                "redemptions": used["n"],
                "median_hours_to_redeem": round(median.total_seconds() / 3600, 1) if median is not None else None,
                "discount_total": _money(used["discount"] or 0),
                "currency": currency,
            }
        )
    return out


def order_values(period: Period) -> dict[str, Any]:
    """Average purchase amount in the range, of purchases with a code applied and without.

    One pass over the range's purchases (index transaction_occurred), grouped by whether a code
    was applied to the order (a probe of coderedemption.order_id each), not one pass per group.
    """
    with_code = Exists(
        CodeRedemption.objects.filter(order_id=OuterRef("external_id"), status=CodeRedemption.Status.APPLIED)
    )
    rows = (
        Transaction.objects.filter(period.within("occurred_at"))
        .annotate(coded=with_code)
        .values("coded")
        .annotate(n=Count("id"), avg=Avg("amount"))
        .order_by()
    )
    groups = {bool(r["coded"]): r for r in rows}
    empty = {"n": 0, "avg": None}
    a, b = groups.get(True, empty), groups.get(False, empty)
    return {
        "currency": ProgramSettings.load().currency,
        "with_codes": {"orders": a["n"], "average": _money(a["avg"])},
        "without_codes": {"orders": b["n"], "average": _money(b["avg"])},
    }


def open_anomalies(*, limit: int = 20) -> list[dict[str, Any]]:
    """The newest anomaly signals nobody has reviewed yet (promotions.abuse raises them)."""
    return [
        {
            "id": s.pk,
            "kind": s.kind,
            "kind_display": s.get_kind_display(),
            "subject_type": s.subject_type,
            "subject": s.subject,
            "count": s.count,
            "created_at": s.created_at,
        }
        for s in AbuseSignal.objects.filter(reviewed=False).order_by("-created_at")[:limit]
    ]


def report_figures(period: Period) -> dict[str, Any]:
    return {
        "campaigns": report_campaigns(period),
        "order_value": order_values(period),
        "anomalies": open_anomalies(),
    }


def rollup_code_uses(period: Period) -> list[tuple[dt.date, str, int]]:
    """Per day: code uses recorded, whatever their status now (index coderedemption_created)."""
    rows = period.by_day(CodeRedemption.objects.all()).values("day").annotate(n=Count("id")).order_by()
    return [(r["day"], "", r["n"]) for r in rows]


def daily_code_redemptions(period: Period) -> dict[dt.date, int]:
    """Per day: code uses, from the daily rollup (loyalty.insight.rollup)."""
    from loyalty.insight import rollup

    return rollup.daily_total("promotions.code_uses", period)
