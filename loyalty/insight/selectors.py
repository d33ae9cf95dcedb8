"""Reads behind the loyalty core's part of the report and the home page.

Points are reported per metric (a point currency) and never added across metrics.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from loyalty.models import LedgerEntry, OutboxMessage, PointBalance, PointLot, WebhookDelivery

from .registry import Period

STUCK_AFTER = dt.timedelta(minutes=10)
# Credits that bring new points into the program (a rollback only gives back what was taken).
ISSUING_KINDS = (
    LedgerEntry.Kind.EARN,
    LedgerEntry.Kind.RETRO,
    LedgerEntry.Kind.AWARD,
    LedgerEntry.Kind.ADJUSTMENT,
)


def _metric_codes(ids) -> dict[int, str]:
    from loyalty.models import Metric

    return dict(Metric.objects.filter(pk__in=set(ids)).values_list("pk", "code"))


def liability() -> dict[str, dict[str, int]]:
    """Per metric: the points members hold (spendable), pending, and the debt they owe.

    One sequential aggregate over the balances grouped by ``metric_id`` (one row per member and
    metric, always current: no maintained total that could drift); the codes are looked up after,
    so the million rows are never joined to the metric table.
    """
    rows = list(
        PointBalance.objects.values("metric_id")
        .annotate(balance=Sum("balance"), pending=Sum("pending"), debt=Sum("debt"))
        .order_by()
    )
    codes = _metric_codes(r["metric_id"] for r in rows)
    return {
        codes[r["metric_id"]]: {"balance": r["balance"] or 0, "pending": r["pending"] or 0, "debt": r["debt"] or 0}
        for r in sorted(rows, key=lambda r: codes[r["metric_id"]])
    }


def expiring_within(days: int = 30, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Per metric: points in open lots that expire within ``days`` (index pointlot_open_expiry)."""
    now = now or timezone.now()
    rows = list(
        PointLot.objects.filter(remaining__gt=0, expires_at__gt=now, expires_at__lte=now + dt.timedelta(days=days))
        .values("metric_id")
        .annotate(points=Sum("remaining"))
        .order_by()
    )
    codes = _metric_codes(r["metric_id"] for r in rows)
    return {codes[r["metric_id"]]: r["points"] or 0 for r in sorted(rows, key=lambda r: codes[r["metric_id"]])}


def _ledger_per_day(period: Period, q: Q) -> list[tuple[dt.date, str, int]]:
    rows = period.by_day(LedgerEntry.objects.filter(q)).values("day", "metric_id").annotate(n=Sum("amount")).order_by()
    return [(r["day"], str(r["metric_id"]), r["n"] or 0) for r in rows]


def rollup_issued(period: Period) -> list[tuple[dt.date, str, int]]:
    """Per day and metric id: points brought into the program (the ledger is append-only)."""
    return _ledger_per_day(period, Q(kind__in=ISSUING_KINDS, amount__gt=0))


def rollup_expired(period: Period) -> list[tuple[dt.date, str, int]]:
    """Per day and metric id: points expired (negative amounts)."""
    return _ledger_per_day(period, Q(kind=LedgerEntry.Kind.EXPIRY))


def breakage(period: Period) -> dict[str, dict]:
    """Per metric: points issued and points expired in the range, and expired ÷ issued.

    From the daily rollup (loyalty.insight.rollup): closed days stored, today live.
    """
    from . import rollup

    issued_ids = rollup.totals("points.issued", period)
    expired_ids = rollup.totals("points.expired", period)
    codes = _metric_codes(int(k) for k in [*issued_ids, *expired_ids])
    issued = {codes[int(k)]: v for k, v in issued_ids.items()}
    expired = {codes[int(k)]: v for k, v in expired_ids.items()}
    out = {}
    for metric in sorted(set(issued) | set(expired)):
        i, e = issued.get(metric) or 0, -(expired.get(metric) or 0)
        out[metric] = {"issued": i, "expired": e, "rate": round(e / i, 4) if i else None}
    return out


def failed_deliveries() -> QuerySet[WebhookDelivery]:
    """Webhook deliveries that gave up: the receiver lost events until someone replays them."""
    return WebhookDelivery.objects.filter(status=WebhookDelivery.Status.FAILED)


def stuck_outbox(queryset: QuerySet[OutboxMessage] | None = None, *, now: dt.datetime | None = None) -> QuerySet:
    """Messages that failed for good, or that should have run more than ten minutes ago (the home
    page's queue and the outbox list's "Stuck" filter)."""
    late = (now or timezone.now()) - STUCK_AFTER
    q = (
        Q(status=OutboxMessage.Status.FAILED)
        | Q(status=OutboxMessage.Status.PENDING, available_at__lte=late)
        | Q(status__in=[OutboxMessage.Status.PUBLISHED, OutboxMessage.Status.RUNNING], lease_until__lte=late)
    )
    return (OutboxMessage.objects.all() if queryset is None else queryset).filter(q)
