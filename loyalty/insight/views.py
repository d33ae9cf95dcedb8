"""The operations home (the admin index) and the dashboard page: thin views over the report."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from loyalty.exceptions import InvalidInput

from . import report
from .registry import Period, lookups_for, queues_for

REPORT_PERM = "loyalty.view_reports"
SERIES_LABELS = {
    "redemptions": "Redemptions",
    "awards": "Awards",
    "rollbacks": "Rollbacks",
    "code_redemptions": "Code uses",
}


def daily_chart(summary: dict[str, Any], keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Chart.js data for the per-day counts (one line per series)."""
    days = summary["daily"]
    keys = keys or tuple(k for k in (days[0] if days else {}) if k != "date")
    return {
        "type": "line",
        "labels": [row["date"].isoformat() for row in days],
        "datasets": [{"label": SERIES_LABELS.get(k, k), "data": [row[k] for row in days]} for k in keys],
    }


def bar_chart(label: str, counts: dict[str, int], names: dict[str, str] | None = None) -> dict[str, Any]:
    names = names or {}
    return {
        "type": "bar",
        "labels": [names.get(k, k.replace("_", " ").capitalize()) for k in counts],
        "datasets": [{"label": label, "data": list(counts.values())}],
    }


def key_figures(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The few numbers at the top of the home page and the dashboard (points per metric, never summed)."""
    rows = [
        {"label": "Redemptions", "value": summary["redemptions"]["count"]},
        {"label": "Awards", "value": summary["awards"]["count"]},
        {"label": "Rollbacks", "value": summary["rollbacks"]["count"]},
        {"label": "Rollback rate", "value": f"{summary['rollback_rate'] * 100:.1f} %"},
    ]
    for metric, points in summary["redemptions"]["points"].items():
        rows.append({"label": f"{metric} spent", "value": points})
    for metric, owed in summary["liability"].items():
        rows.append({"label": f"{metric} held by members", "value": owed["balance"]})
    return rows


def home_context(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    context: dict[str, Any] = {"lookups": lookups_for(user), "queues": queues_for(user), "figures": None}
    if user.has_perm(REPORT_PERM):
        summary = report.summary(Period.last_days(30))
        context.update(
            {
                "figures": key_figures(summary),
                "home_chart": daily_chart(summary, ("redemptions", "awards", "rollbacks")),
                "dashboard_url": reverse("insight-dashboard"),
                "period": summary,
            }
        )
    return context


PRESETS = (7, 30, 90, 365)


def dashboard_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(REPORT_PERM):
        raise PermissionDenied
    error = None
    try:
        period = report.parse_period(request.GET.get("from"), request.GET.get("to"))
    except InvalidInput as exc:
        error = "; ".join(m for msgs in exc.errors.values() for m in msgs) or exc.detail
        period = Period.last_days(report.DEFAULT_DAYS)
    summary = report.summary(period)
    reasons = summary["rollbacks"]["by_reason"]
    today = Period.last_days(1).end
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "summary": summary,
        "period": period,
        "error": error,
        "figures": key_figures(summary),
        "presets": [
            {
                "days": n,
                "from": (today - dt.timedelta(days=n - 1)).isoformat(),
                "to": today.isoformat(),
                "active": period.end == today and (period.end - period.start).days + 1 == n,
            }
            for n in PRESETS
        ],
        "charts": {
            "daily": daily_chart(summary),
            "reasons": bar_chart("Rollbacks", reasons),
            "tiers": bar_chart("Redemptions", summary["redemptions"]["by_tier"]),
            "segments": bar_chart("Redemptions", summary["redemptions"]["by_segment"]),
        },
        "metrics": sorted(set(summary["liability"]) | set(summary["expiring_30_days"]) | set(summary["breakage"])),
        "queues": queues_for(request.user),
    }
    return TemplateResponse(request, "admin/insight/dashboard.html", context)
