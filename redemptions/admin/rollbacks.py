"""The Rollbacks screen, its approval queue (four-eyes) and the trends page."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import path, reverse

from loyalty.admin.base import BigListMixin, ReadOnlyAdminMixin, ServiceManagedHistoryAdmin, admin_link

from .. import selectors, services
from ..forms import OptionalReasonForm, ReasonForm
from ..models import Rollback
from .common import CreatedWithinFilter, FastActionCheckboxMixin, changelist_url, form_action, link, perm_checker

APPROVE_ROLLBACK = "redemptions.approve_rollback"

approve_rollbacks = form_action(
    name="approve_rollbacks",
    description="Approve selected rollbacks",
    permission="approve",
    form_class=OptionalReasonForm,
    verb="approved",
    intro="Each rollback is checked again (code use, shipment, amounts) and executed; the member is told.",
    button="Approve",
    run=lambda obj, user, data: services.approve_rollback(rollback=obj, actor=user, note=data["reason"]),
)

reject_rollbacks = form_action(
    name="reject_rollbacks",
    description="Reject selected rollbacks",
    permission="approve",
    form_class=ReasonForm,
    verb="rejected",
    intro="Nothing is given back; the member is told.",
    button="Reject",
    run=lambda obj, user, data: services.reject_rollback(rollback=obj, actor=user, reason=data["reason"]),
)


@admin.register(Rollback)
class RollbackAdmin(FastActionCheckboxMixin, BigListMixin, ReadOnlyAdminMixin, ServiceManagedHistoryAdmin):
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

    def _in_queue(self, request) -> bool:
        return getattr(request, "rollbacks_queue", False)

    def get_queryset(self, request):
        if self._in_queue(request):
            return selectors.rollback_queue()
        return super().get_queryset(request)

    def get_ordering(self, request):
        return ("created_at", "id") if self._in_queue(request) else self.ordering

    def get_list_filter(self, request):
        return ("reason", CreatedWithinFilter) if self._in_queue(request) else self.list_filter

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
        return link("admin:redemptions_redemption_change", obj.redemption_id, f"#{obj.redemption_id}")

    @admin.display(description="Member", ordering="member")
    def member_link(self, obj):
        return admin_link(obj.member)

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
            path("queue/", view(self.queue_view), name=f"{info}_queue"),
            path("trends/", view(self.trends_view), name=f"{info}_trends"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        extra_context.setdefault("queue_url", reverse("admin:redemptions_rollback_queue"))
        extra_context["trends_url"] = reverse("admin:redemptions_rollback_trends")
        extra_context["waiting"] = (
            Rollback.objects.filter(status=Rollback.Status.PENDING_APPROVAL).order_by()[:1000].count()
        )
        return super().changelist_view(request, extra_context)

    def queue_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        request.rollbacks_queue = True
        return self.changelist_view(
            request,
            extra_context={
                "title": "Rollback approval queue",
                "queue": True,
                "changelist_url": reverse("admin:redemptions_rollback_changelist"),
            },
        )

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

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        if obj is not None and obj.status == Rollback.Status.PENDING_APPROVAL and self.has_approve_permission(request):
            extra_context["response_actions"] = [
                {"name": "approve_rollbacks", "label": "Approve…"},
                {"name": "reject_rollbacks", "label": "Reject…"},
            ]
            extra_context["actions_url"] = reverse("admin:redemptions_rollback_changelist")
            extra_context["action_checkbox_name"] = helpers.ACTION_CHECKBOX_NAME
        if obj is not None:
            extra_context["member_url"] = reverse("admin:loyalty_member_change", args=[obj.member_id])
        return super().change_view(request, object_id, form_url, extra_context)


def member_rollbacks_url(member_id: int) -> str:
    return changelist_url("admin:redemptions_rollback_changelist", member__id__exact=member_id)
