"""Template helpers of the operations home and the dashboard: the home's context, money, ages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def operations_home(context) -> dict:
    from loyalty.insight.views import home_context

    return home_context(context["request"])


@register.filter
def money(value, currency: str = "") -> str:
    """``307.770000`` and ``"EUR"`` → ``"307.77 EUR"``; empty for no amount."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(value).quantize(Decimal("0.01"))
    except (InvalidOperation, TypeError, ValueError):
        return str(value)
    text = f"{amount:,.2f}"
    return f"{text} {currency}".strip()


@register.filter
def age(value) -> str:
    """A timedelta as "3 d 4 h", "2 h 5 min" or "4 min"."""
    if not isinstance(value, dt.timedelta):
        return ""
    minutes = int(value.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


@register.filter
def percent(value) -> str:
    if value is None:
        return "—"
    return f"{float(value) * 100:.1f} %"


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key)


@register.simple_tag
def program_currency() -> str:
    """The program's currency code (every purchase amount and discount is in it)."""
    from loyalty.models import ProgramSettings

    return ProgramSettings.load().currency


@register.filter
def points_by_metric(breakdown) -> str:
    """An earning breakdown's points per metric, e.g. "45 points · 3 status_credits" (never one sum)."""
    totals = (breakdown or {}).get("points_by_metric") or {}
    if not totals:
        return f"{(breakdown or {}).get('points', 0)} points"
    return " · ".join(f"{n} {metric}" for metric, n in sorted(totals.items()))
