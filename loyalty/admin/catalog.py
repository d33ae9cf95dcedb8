"""Admin for the rewards catalogue."""

from __future__ import annotations

from django.contrib import admin

from loyalty.kernel.admin import HistoryAdmin

from ..models import Reward


@admin.register(Reward)
class RewardAdmin(HistoryAdmin):
    list_display = (
        "name",
        "external_id",
        "type",
        "metric",
        "points",
        "stock",
        "requires_approval",
        "requires_fulfillment",
        "active",
        "active_from",
        "active_until",
    )
    list_filter = ("type", "active", "metric", "requires_approval", "requires_fulfillment")
    search_fields = ("external_id", "name")
    list_select_related = ("metric",)
    autocomplete_fields = ("metric",)
    filter_horizontal = ("eligible_tiers",)
    readonly_fields = ("created_at", "updated_at")
    fieldsets = [
        (None, {"fields": ("external_id", "name", "description", "type")}),
        ("Price and stock", {"fields": ("metric", "points", "stock")}),
        ("Workflow", {"fields": ("requires_approval", "requires_fulfillment")}),
        ("Availability", {"fields": ("active", "active_from", "active_until", "eligible_tiers")}),
        ("Timestamps", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    ]
