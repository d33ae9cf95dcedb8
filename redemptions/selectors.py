"""Read queries of redemptions: the screens' base querysets, the approval queues and rollback trends.

Nothing here writes. Every query is index-friendly (see ``Redemption.Meta.indexes`` and
``Rollback.Meta.indexes``) because the tables reach millions of rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import TruncWeek
from django.utils import timezone

from loyalty.insight import Period
from loyalty.models import Member, PointBalance, ProgramSettings
from promotions import codegen
from promotions.models import Code

from .models import Redemption, Rollback

# The Redemptions screen: every redemption plus the awards a member has claimed.
REDEMPTIONS_SCREEN = Q(kind=Redemption.Kind.REDEMPTION) | Q(
    kind=Redemption.Kind.AWARD, award_status=Redemption.AwardStatus.CLAIMED
)


def redemptions_screen() -> QuerySet[Redemption]:
    return Redemption.objects.filter(REDEMPTIONS_SCREEN)


def awards_screen() -> QuerySet[Redemption]:
    return Redemption.objects.filter(kind=Redemption.Kind.AWARD)


@dataclass(frozen=True)
class SearchTerms:
    """A search term resolved to ids through small, uniquely indexed tables."""

    text: str
    member_ids: list[int]
    code_ids: list[int]
    number: int | None


def resolve_search(term: str) -> SearchTerms | None:
    """Exact matches only: customer id, email, issued code (normalised) and a number (an id).
    Members and codes are looked up first, so the big tables are only probed by their
    ``member`` / ``issued_code`` indexes. None for an empty term."""
    term = (term or "").strip()
    if not term:
        return None
    member_q = Q(external_id=term)
    if "@" in term:
        member_q |= Q(email__in={term, term.lower()})
    member_ids = list(Member.objects.filter(member_q).values_list("pk", flat=True)[:100])
    normalized = codegen.normalize(term)
    code_ids = list(Code.objects.filter(normalized=normalized).values_list("pk", flat=True)[:1]) if normalized else []
    digits = term.lstrip("#")
    number = int(digits) if digits.isdigit() and len(digits) < 19 else None
    return SearchTerms(text=term, member_ids=member_ids, code_ids=code_ids, number=number)


def search_filter(term: str) -> Q | None:
    """The Redemptions/Awards screens' search: customer id, email, issued code, id, legacy reference."""
    found = resolve_search(term)
    if found is None:
        return None
    q = Q(external_ref=found.text)
    if found.member_ids:
        q |= Q(member_id__in=found.member_ids)
    if found.code_ids:
        q |= Q(issued_code_id__in=found.code_ids)
    if found.number is not None:
        q |= Q(pk=found.number)
    return q


def with_member_balance(qs: QuerySet[Redemption]) -> QuerySet[Redemption]:
    """Annotate ``member_balance``: the member's spendable balance in the reward's metric."""
    balance = PointBalance.objects.filter(member_id=OuterRef("member_id"), metric_id=OuterRef("metric_id"))
    return qs.annotate(member_balance=Subquery(balance.values("balance")[:1]))


def approval_queue() -> QuerySet[Redemption]:
    """Redemptions and awards waiting for an approver, oldest first (index redemption_approval_queue)."""
    return with_member_balance(
        Redemption.objects.filter(approval_status=Redemption.ApprovalStatus.SUBMITTED)
        .select_related("member", "reward", "metric", "created_by")
        .order_by("created_at", "id")
    )


def rollback_queue() -> QuerySet[Rollback]:
    """Rollbacks waiting for a second person, oldest first (index rollback_queue)."""
    return (
        Rollback.objects.filter(status=Rollback.Status.PENDING_APPROVAL)
        .select_related("member", "redemption__reward", "requested_by")
        .order_by("created_at", "id")
    )


def member_responses(member: Member, *, limit: int = 20) -> list[Redemption]:
    return list(
        Redemption.objects.filter(member=member)
        .select_related("reward", "issued_code")
        .order_by("-created_at", "-id")[:limit]
    )


def member_rollbacks(member: Member, *, limit: int = 20) -> list[Rollback]:
    return list(
        Rollback.objects.filter(member=member)
        .select_related("redemption__reward", "requested_by", "approved_by", "rejected_by")
        .order_by("-created_at", "-id")[:limit]
    )


def reward_responses(reward_id: int, *, limit: int = 20) -> list[Redemption]:
    return list(
        Redemption.objects.filter(reward_id=reward_id)
        .select_related("member", "issued_code")
        .order_by("-created_at", "-id")[:limit]
    )


# --- rollback trends -------------------------------------------------------------------------


@dataclass(frozen=True)
class WeekRow:
    week: str  # ISO week, e.g. "2025-W07"
    week_start: dt.date
    by_reason: dict[str, int]
    total: int
    points: int


@dataclass(frozen=True)
class StaffRow:
    user_id: int
    username: str
    total: int
    executed: int
    pending: int
    rejected: int
    points: int


@dataclass(frozen=True)
class RepeatedMember:
    member_id: int
    external_id: str
    name: str
    count: int


@dataclass(frozen=True)
class RollbackTrends:
    since: dt.datetime
    weeks: list[WeekRow]
    reasons: list[tuple[str, str]]
    by_staff: list[StaffRow]
    repeated: list[RepeatedMember]
    repeated_threshold: int
    totals_by_reason: dict[str, int] = field(default_factory=dict)


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def rollback_trends(*, weeks: int = 12, now: dt.datetime | None = None) -> RollbackTrends:
    """Rollbacks by reason and ISO week (the last ``weeks`` weeks, current one included), by the
    staff member who asked, and the members at or above the policy's 30-day maximum."""
    now = now or timezone.now()
    local_today = timezone.localtime(now).date()
    first_monday = _monday(local_today) - dt.timedelta(weeks=weeks - 1)
    tz = timezone.get_current_timezone()
    since = dt.datetime.combine(first_monday, dt.time.min, tzinfo=tz)
    recent = Rollback.objects.filter(created_at__gte=since)

    cells: dict[dt.date, dict[str, int]] = {}
    points: dict[dt.date, int] = {}
    for row in (
        recent.annotate(week=TruncWeek("created_at"))
        .values("week", "reason")
        .annotate(n=Count("id"), pts=Sum("points_requested"))
        .order_by()
    ):
        week = row["week"]
        week = week.date() if isinstance(week, dt.datetime) else week
        cells.setdefault(week, {})[row["reason"]] = cells.get(week, {}).get(row["reason"], 0) + row["n"]
        points[week] = points.get(week, 0) + (row["pts"] or 0)

    reasons = list(Rollback.Reason.choices)
    week_rows = []
    totals = {code: 0 for code, _ in reasons}
    for i in range(weeks):
        start = first_monday + dt.timedelta(weeks=i)
        by_reason = {code: cells.get(start, {}).get(code, 0) for code, _ in reasons}
        for code, n in by_reason.items():
            totals[code] += n
        iso = start.isocalendar()
        week_rows.append(
            WeekRow(
                week=f"{iso.year}-W{iso.week:02d}",
                week_start=start,
                by_reason=by_reason,
                total=sum(by_reason.values()),
                points=points.get(start, 0),
            )
        )

    status = Rollback.Status
    by_staff = [
        StaffRow(
            user_id=row["requested_by"],
            username=row["requested_by__username"],
            total=row["total"],
            executed=row["executed"],
            pending=row["pending"],
            rejected=row["rejected"],
            points=row["points"] or 0,
        )
        for row in recent.values("requested_by", "requested_by__username")
        .annotate(
            total=Count("id"),
            executed=Count("id", filter=Q(status=status.EXECUTED)),
            pending=Count("id", filter=Q(status=status.PENDING_APPROVAL)),
            rejected=Count("id", filter=Q(status=status.REJECTED)),
            points=Sum("points_returned"),
        )
        .order_by("-total", "requested_by__username")
    ]

    threshold = ProgramSettings.load().rollback_max_per_member_30_days
    repeated = [
        RepeatedMember(
            member_id=row["member"], external_id=row["member__external_id"], name=row["member__name"], count=row["n"]
        )
        for row in Rollback.objects.filter(created_at__gte=now - dt.timedelta(days=30))
        .exclude(status=Rollback.Status.REJECTED)
        .values("member", "member__external_id", "member__name")
        .annotate(n=Count("id"))
        .filter(n__gte=max(threshold, 1))
        .order_by("-n", "member__external_id")[:100]
    ]
    return RollbackTrends(
        since=since,
        weeks=week_rows,
        reasons=reasons,
        by_staff=by_staff,
        repeated=repeated,
        repeated_threshold=threshold,
        totals_by_reason=totals,
    )


# --- the report and the operations home (registered in redemptions/insight.py) ----------------


def _counts(qs, field: str, *, empty: str = "none") -> dict[str, int]:
    rows = qs.values(field).annotate(n=Count("id")).order_by("-n", field)
    return {(r[field] or empty): r["n"] for r in rows}


def _ranked(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _day(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def rollup_count(period: Period, kind: str) -> list[tuple[dt.date, str, int]]:
    """Per day: redemptions (or awards) created (index redemption_kind_created)."""
    rows = period.by_day(Redemption.objects.filter(kind=kind)).values("day").annotate(n=Count("id")).order_by()
    return [(r["day"], "", r["n"]) for r in rows]


def rollup_points(period: Period) -> list[tuple[dt.date, str, int]]:
    """Per day and metric id: points spent by the redemptions created (never changed afterwards:
    a reject, return or rollback gives points back as ``points_returned``)."""
    rows = (
        period.by_day(Redemption.objects.filter(kind=Redemption.Kind.REDEMPTION, metric__isnull=False))
        .values("day", "metric_id")
        .annotate(n=Sum("points_spent"))
        .order_by()
    )
    return [(r["day"], str(r["metric_id"]), r["n"] or 0) for r in rows]


def rollup_by_tier(period: Period) -> list[tuple[dt.date, str, int]]:
    """Per day and tier id: redemptions by the tier the member was in when redeeming.

    Read from the tier history (``TierMembership``'s half-open intervals, which never overlap), so
    a later tier change does not move a redemption of a closed day. One outer join of the range's
    redemptions to the history by member; "" where the member had no tier at the time.
    """
    from django.db import connections

    from loyalty.models import TierMembership

    redemptions = period.by_day(Redemption.objects.filter(kind=Redemption.Kind.REDEMPTION))
    conn = connections[redemptions.db]
    table = conn.ops.quote_name(TierMembership._meta.db_table)
    inner, params = redemptions.values("day", "member_id", "created_at").order_by().query.sql_with_params()
    with conn.cursor() as cursor:
        cursor.execute(
            f"SELECT r.day, t.tier_id, COUNT(*) FROM ({inner}) r LEFT JOIN {table} t"
            " ON t.member_id = r.member_id AND t.valid_from <= r.created_at"
            " AND (t.valid_to IS NULL OR t.valid_to > r.created_at)"
            " GROUP BY r.day, t.tier_id",
            params,
        )
        rows = cursor.fetchall()
    return [(_day(day), "" if tier_id is None else str(tier_id), n) for day, tier_id, n in rows]


def _by_tier(period: Period) -> dict[str, int]:
    """Redemptions in the range per tier at the time ("none" without one), from the rollup."""
    from loyalty.insight import rollup
    from loyalty.models import Tier

    counts = rollup.totals("redemptions.by_tier", period)
    names = dict(Tier.objects.filter(pk__in=[int(t) for t in counts if t]).values_list("pk", "code"))
    out: dict[str, int] = {}
    for tier_id, n in counts.items():
        key = names.get(int(tier_id)) if tier_id else None
        key = key or "none"
        out[key] = out.get(key, 0) + n
    return _ranked({k: n for k, n in out.items() if n})


def _by_segment(redemptions: QuerySet[Redemption], total: int | None = None) -> dict[str, int]:
    """Redemptions in the range per segment of the member (once per segment; "none" in none).

    Joined from the range's redemptions straight to the segment memberships by member id: the
    member table itself is not read.
    """
    from django.db import connections

    from loyalty.models import Segment

    through = Segment.members.through
    table = connections[redemptions.db].ops.quote_name(through._meta.db_table)
    inner, params = redemptions.values("member_id").order_by().query.sql_with_params()
    with connections[redemptions.db].cursor() as cursor:
        cursor.execute(
            f"SELECT s.segment_id, COUNT(*) FROM ({inner}) r JOIN {table} s ON s.member_id = r.member_id"
            " GROUP BY s.segment_id",
            params,
        )
        counts = dict(cursor.fetchall())
    names = dict(Segment.objects.filter(pk__in=list(counts)).values_list("pk", "code"))
    out = {names[k]: n for k, n in counts.items()}
    # "none": all of them less those of a member in some segment (a semi-join, which the planner
    # may start from the memberships; NOT EXISTS had to probe for every redemption in the range).
    if total is None:
        total = redemptions.count()
    none = total - redemptions.filter(Exists(through.objects.filter(member_id=OuterRef("member_id")))).count()
    if none:
        out["none"] = none
    return _ranked(out)


def report_figures(period: Period) -> dict[str, Any]:
    """Redemptions and awards created in the range, the rollbacks requested in it that ran, and
    the rollback rate (those rollbacks ÷ those redemptions).

    Points are per metric (a redemption spends one metric). The counts, points and tiers come from
    the daily rollup (loyalty.insight.rollup; the tier is the one at the time of the redemption);
    segments are the member's current ones and rollbacks go by their status now, so both are live.
    """
    from loyalty.insight import rollup
    from loyalty.models import Metric

    in_range = period.within()
    redemptions = Redemption.objects.filter(in_range, kind=Redemption.Kind.REDEMPTION)
    rollbacks = Rollback.objects.filter(in_range, status=Rollback.Status.EXECUTED)
    rollback_points = (
        rollbacks.values("redemption__metric__code")
        .annotate(n=Sum("points_returned"))
        .order_by("redemption__metric__code")
    )
    points = rollup.totals("redemptions.points", period)
    codes = dict(Metric.objects.filter(pk__in=[int(m) for m in points]).values_list("pk", "code"))
    count = sum(rollup.totals("redemptions.count", period).values())
    executed = rollbacks.count()
    return {
        "redemptions": {
            "count": count,
            "points": {codes[int(m)]: n for m, n in sorted(points.items(), key=lambda kv: codes[int(kv[0])])},
            "by_tier": _by_tier(period),
            "by_segment": _by_segment(redemptions, count),
        },
        "awards": {"count": sum(rollup.totals("awards.count", period).values())},
        "rollbacks": {
            "count": executed,
            "points": {
                r["redemption__metric__code"]: r["n"] or 0 for r in rollback_points if r["redemption__metric__code"]
            },
            "by_reason": _counts(rollbacks, "reason"),
            "by_staff": _counts(rollbacks, "requested_by__username"),
        },
        "rollback_rate": round(executed / count, 4) if count else 0.0,
    }


def _daily(qs, period: Period) -> dict[dt.date, int]:
    rows = period.by_day(qs).values("day").annotate(n=Count("id")).order_by("day")
    return {r["day"]: r["n"] for r in rows}


def daily_redemptions(period: Period) -> dict[dt.date, int]:
    from loyalty.insight import rollup

    return rollup.daily_total("redemptions.count", period)


def daily_awards(period: Period) -> dict[dt.date, int]:
    from loyalty.insight import rollup

    return rollup.daily_total("awards.count", period)


def daily_rollbacks(period: Period) -> dict[dt.date, int]:
    return _daily(Rollback.objects.filter(status=Rollback.Status.EXECUTED), period)
