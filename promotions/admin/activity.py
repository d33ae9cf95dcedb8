"""Code uses, the raw code timeline, per-member usage and the "Anomalies" screen (abuse signals)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from django.utils.html import format_html, format_html_join

from loyalty.kernel.admin import (
    BigListMixin,
    ExactSearchMixin,
    ReadOnlyAdminMixin,
    ServiceManagedHistoryAdmin,
    bulk_action,
    link,
    perm_checker,
)

from .. import codegen, services
from ..forms import ReasonForm
from ..models import AbuseSignal, CampaignMemberUsage, CodeEvent, CodeRedemption
from .codes import CampaignFilter
from .common import lookup_url


class _MemberColumn:
    """The member of an activity row, linked (``-`` where there is none)."""

    @admin.display(description="Member")
    def member_link(self, obj):
        return link("loyalty.member", obj.member.external_id, pk=obj.member_id) if obj.member_id else "-"


class _CampaignMemberColumns(_MemberColumn):
    """Both columns of a row that belongs to a campaign and a member."""

    @admin.display(description="Campaign")
    def campaign_link(self, obj):
        return link("promotions.campaign", obj.campaign.name, pk=obj.campaign_id)


@admin.register(CodeRedemption)
class CodeRedemptionAdmin(_CampaignMemberColumns, BigListMixin, ReadOnlyAdminMixin, ServiceManagedHistoryAdmin):
    list_display = (
        "code_link",
        "campaign_link",
        "member_link",
        "order_id",
        "discount",
        "bonus_points",
        "status",
        "created_at",
    )
    list_filter = ("status", CampaignFilter)
    list_select_related = ("code", "campaign", "member")
    search_fields = ("order_id",)
    search_help_text = "The exact order id or code."
    ordering = ("-created_at",)
    sortable_by = ("created_at",)
    actions = ["roll_back"]
    fields = (
        "code_link",
        "campaign_link",
        "member_link",
        "status",
        "order_id",
        "order_amount",
        "channel",
        "discount",
        "bonus_points",
        "ledger_entry",
        "redeemed_by",
        "created_at",
        "rolled_back_at",
        "rolled_back_by",
        "rollback_reason",
    )
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(order_id=term) | Q(code__normalized=codegen.normalize(term))), False

    @admin.display(description="Code")
    def code_link(self, obj):
        return format_html('<a href="{}">{}</a>', lookup_url(obj.code.normalized), obj.code.code)

    has_rollback_permission = perm_checker("promotions.change_coderedemption")

    roll_back = bulk_action(
        name="roll_back",
        description="Roll back selected code uses…",
        permission="rollback",
        form_class=ReasonForm,
        title="Roll back code uses",
        intro="Counters and bonus points go back; each code is usable again where its limits allow.",
        button="Roll back these uses",
        prepare=lambda qs: qs.select_related("code"),
        describe=lambda u: f"{u.code.code} in order {u.order_id or '-'} ({u.get_status_display().lower()})",
        run=lambda u, user, data: services.rollback_code_redemption(redemption=u, actor=user, reason=data["reason"]),
        done="Rolled back {n} code use{s}.",
        label=lambda u: f"{u.code.code} in order {u.order_id or u.pk}",
    )


@admin.register(CodeEvent)
class CodeEventAdmin(_MemberColumn, BigListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every recorded event of every code; the lookup page shows one code's timeline."""

    list_display = ("created_at", "code_text_link", "kind", "result", "client", "ip", "member_link", "order_id")
    list_filter = ("kind",)
    list_select_related = ("member",)
    search_fields = ("code_text",)
    search_help_text = "The exact code (case and separators do not matter)."
    ordering = ("-id",)
    sortable_by = ()
    fields = (
        "code_text_link",
        "kind",
        "result",
        "member_link",
        "actor",
        "client",
        "ip",
        "order_id",
        "detail",
        "created_at",
    )
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        term = codegen.normalize((search_term or "").strip())
        if not term:
            return queryset, False
        return queryset.filter(code_text=term), False

    @admin.display(description="Code")
    def code_text_link(self, obj):
        return format_html('<a href="{}">{}</a>', lookup_url(obj.code_text), obj.code_text)


@admin.register(AbuseSignal)
class AbuseSignalAdmin(ExactSearchMixin, ReadOnlyAdminMixin, ServiceManagedHistoryAdmin):
    """The "Anomalies" screen."""

    # The list's columns; the page shows the same with the codes tried and the detail in between.
    _signal = ("kind", "subject_type", "subject_display", "count", "window", "locked_until")
    _review = ("created_at", "reviewed", "reviewed_by")
    list_display = _signal + _review
    list_filter = ("kind", "reviewed", "subject_type")
    list_select_related = ("reviewed_by",)
    search_fields = ("subject",)  # shows the search box; matching is exact (ExactSearchMixin)
    exact_search_fields = ("subject",)
    id_search_fields = ()  # a member id is a subject like any other, not this table's pk
    search_help_text = "The exact client, IP address or member id."
    ordering = ("-created_at",)
    actions = ["mark_reviewed"]
    fields = _signal + ("last_codes", "detail") + _review
    readonly_fields = fields

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Anomalies", **(extra_context or {})})

    @admin.display(description="Subject", ordering="subject")
    def subject_display(self, obj):
        if obj.subject_type == AbuseSignal.Subject.MEMBER and obj.subject.isdigit():
            return link("loyalty.member", f"member #{obj.subject}", pk=int(obj.subject))
        return obj.subject

    @admin.display(description="Window")
    def window(self, obj):
        seconds = obj.window_seconds
        if seconds % 3600 == 0:
            return f"{seconds // 3600} h"
        if seconds % 60 == 0:
            return f"{seconds // 60} min"
        return f"{seconds} s"

    @admin.display(description="Last codes tried")
    def last_codes(self, obj):
        codes = (obj.detail or {}).get("last_codes") or []
        if not codes:
            return "-"
        return format_html_join(", ", '<a href="{}">{}</a>', ((lookup_url(c), c) for c in codes))

    has_review_permission = perm_checker("promotions.change_abusesignal")

    mark_reviewed = bulk_action(
        name="mark_reviewed",
        description="Mark selected anomalies reviewed",
        permission="review",
        prepare=lambda qs: qs.filter(reviewed=False),
        run=lambda signal, user: services.mark_signal_reviewed(signal=signal, actor=user),
        done="Marked {n} signal{s} reviewed.",
    )


@admin.register(CampaignMemberUsage)
class CampaignMemberUsageAdmin(
    _CampaignMemberColumns, ExactSearchMixin, BigListMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    list_display = ("campaign_link", "member_link", "uses")
    list_filter = (CampaignFilter,)
    list_select_related = ("campaign", "member")
    search_fields = ("member__external_id",)  # shows the search box; matching is exact (ExactSearchMixin)
    exact_search_fields = ("member__external_id",)
    id_search_fields = ()
    search_help_text = "The member's exact customer id."
    ordering = ("-id",)
    sortable_by = ()
    fields = ("campaign_link", "member_link", "uses")
    readonly_fields = fields
