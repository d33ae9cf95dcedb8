"""The report's daily rollup, to look at (superusers: the tables grant no permission to anyone).

Derived rows, written only by ``loyalty.services.insight``; to recompute days use
``manage.py close_insight_days --reopen FROM [TO]`` (docs/operations.md), never an edit here.
"""

from __future__ import annotations

from django.contrib import admin

from loyalty.kernel.admin import BigListMixin, ReadOnlyAdminMixin

from ..models import DailyFigure, InsightDay


@admin.register(InsightDay)
class InsightDayAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("day", "computed_at")
    date_hierarchy = "day"
    ordering = ("-day",)


@admin.register(DailyFigure)
class DailyFigureAdmin(ReadOnlyAdminMixin, BigListMixin, admin.ModelAdmin):
    list_display = ("day", "key", "dim", "value")
    list_filter = ("key",)
    search_fields = ("key",)
    date_hierarchy = "day"
    ordering = ("-day", "key", "dim")
