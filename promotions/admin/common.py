"""Formatting shared by the promotions admin modules (actions and links: ``loyalty.kernel.admin``)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.utils import timezone
from django.utils.html import format_html

from loyalty.kernel.admin import admin_url


def lookup_url(code_text: str) -> str:
    return admin_url("promotions.code", "lookup") + "?" + urlencode({"code": code_text})


def short_time(value) -> str:
    """A compact local time for dense lists (the admin's long format wraps)."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else "-"


def progress_html(generated: int, count: int) -> str:
    pct = int(generated * 100 / count) if count else 0
    return format_html(
        '<span class="batch-progress" title="{}%"><progress max="{}" value="{}"></progress> {}/{} ({}%)</span>',
        pct,
        count,
        generated,
        f"{generated:,}",
        f"{count:,}",
        pct,
    )
