"""The Rollbacks screen, its approval queue (four-eyes) and the trends page."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import path, reverse

from loyalty.kernel.admin import (
    BigListMixin,
    CreatedWithinFilter,
    FastActionCheckboxMixin,
    ObjectActionsMixin,
    QueueMixin,
    ReadOnlyAdminMixin,
    RowButton,
    ServiceManagedHistoryAdmin,
    changelist_url,
    link,
    perm_checker,
)

from .. import selectors
from ..forms import OptionalReasonForm, ReasonForm
from ..models import Rollback
from .responses import MemberUrlMixin, response_action

APPROVE_ROLLBACK = "redemptions.approve_rollback"

approve_rollbacks = response_action(
    "approve_rollbacks", "Approve selected rollbacks", "approve", "approved", "approve_rollback", OptionalReasonForm,
    "Approve", renames={"reason": "note"}, target="rollback",
)  # fmt: skip
reject_rollbacks = response_action(
    "reject_rollbacks", "Reject selected rollbacks", "approve", "rejected", "reject_rollback", ReasonForm, "Reject",
    target="rollback",
)  # fmt: skip


def _pending(request, obj) -> bool:
    return obj.status == Rollback.Status.PENDING_APPROVAL


@admin.register(Rollback)
class RollbackAdmin(
    MemberUrlMixin,
    QueueMixin,
    ObjectActionsMixin,
    FastActionCheckboxMixin,
    BigListMixin,
    ReadOnlyAdminMixin,
    ServiceManagedHistoryAdmin,
):
    change_list_template = "admin/redemptions/rollback/change_list.html"
    change_form_template = "admin/redemptions/rollback/change_form.html"
    action_row_template = "admin/redemptions/_rollback_rows.html"
    list_display = (
        "id",
        "created_at",
        "redemption_link",
        "member_link",
        "reward",
        "points_requested",
        "points_returned",
        "reason",
        "status",
        "requested_by",
        "approval_required_because",
    )  # full/via/decider: filters and the rollback's page (the list fits 1366 px)
    list_display_links = ("id",)
    list_filter = ("status", "reason", "via", "full", CreatedWithinFilter)
    list_select_related = ("member", "redemption__reward", "requested_by", "approved_by", "rejected_by")
    search_fields = ("member__external_id",)
    search_help_text = "Exact customer id, email, rollback id; or r<id> for a redemption's rollbacks."
    ordering = ("-created_at", "-id")
    actions = [approve_rollbacks, reject_rollbacks]
    row_buttons = (
        RowButton("approve_rollbacks", "Approve…", _pending),
        RowButton("reject_rollbacks", "Reject…", _pending),
    )
    readonly_fields = ("redemption_link", "member_link")
    fieldsets = [
        (None, {"fields": ("redemption_link", "member_link", "status", "reason", "via", "note", "created_at")}),
        ("Points", {"fields": ("full", "points_requested", "points_returned", "ledger_entries")}),
        (
            "Decision",
            {
                "fields": (
                    "approval_required_because",
                    "requested_by",
                    "approved_by",
                    "rejected_by",
                    "decision_note",
                    "executed_at",
                )
            },
        ),
        ("Effects", {"fields": ("code_voided", "stock_restored", "notified", "notified_at", "updated_at")}),
    ]

    has_approve_permission = perm_checker(APPROVE_ROLLBACK)

    # --- the approval queue (QueueMixin): rollbacks waiting for a second person ------------------
    queue_title = "Rollback approval queue"
    queue_list_filter = ("reason", CreatedWithinFilter)

    def queue_queryset(self, request, queryset):
        return selectors.rollback_queue()

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if term[:1].lower() == "r" and term[1:].isdigit():
            return queryset.filter(redemption_id=int(term[1:])), False
        found = selectors.resolve_search(term)
        if found is None:
            return queryset, False
        q = Q(member_id__in=found.member_ids)
        if found.number is not None:
            q |= Q(pk=found.number)
        return queryset.filter(q), False

    @admin.display(description="Redemption", ordering="redemption")
    def redemption_link(self, obj):
        return link("redemptions.redemption", f"#{obj.redemption_id}", pk=obj.redemption_id)

    @admin.display(description="Member", ordering="member")
    def member_link(self, obj):
        return link(obj.member)

    @admin.display(description="Reward")
    def reward(self, obj):
        return obj.redemption.reward.name

    @admin.display(description="Decided by")
    def decided_by(self, obj):
        return obj.approved_by or obj.rejected_by or "-"

    def get_urls(self):
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("trends/", view(self.trends_view), name=f"{info}_trends"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        extra_context["trends_url"] = reverse("admin:redemptions_rollback_trends")
        extra_context["waiting"] = (
            Rollback.objects.filter(status=Rollback.Status.PENDING_APPROVAL).order_by()[:1000].count()
        )
        return super().changelist_view(request, extra_context)

    def trends_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        trends = selectors.rollback_trends(weeks=12)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Rollback trends",
            "trends": trends,
            "changelist_url": reverse("admin:redemptions_rollback_changelist"),
            "max_week": max([w.total for w in trends.weeks] + [1]),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/redemptions/rollback/trends.html", context)


def member_rollbacks_url(member_id: int) -> str:
    return changelist_url("redemptions.rollback", member__id__exact=member_id)
