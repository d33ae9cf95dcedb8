"""The outbox in the admin: what is waiting, running, stuck or failed, and a re-send action."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.utils import timezone

from config.celery import app as celery_app
from loyalty.kernel.admin import (
    BigListMixin,
    ExactSearchMixin,
    LastErrorColumnMixin,
    ServiceManagedHistoryAdmin,
    ViewOnlyMixin,
    perm_checker,
)

from .. import services
from ..exceptions import DomainError
from ..insight import selectors as insight_selectors
from ..models import OutboxMessage


class ResendForm(ActionForm):
    reason = forms.CharField(
        required=False, max_length=200, label="Reason", help_text="Why these are sent again (kept in their history)."
    )


class TaskNameFilter(admin.SimpleListFilter):
    """The project's task names, from the Celery registry (no DISTINCT over a big table)."""

    title = "task"
    parameter_name = "name"

    def lookups(self, request, model_admin):
        celery_app.loader.import_default_modules()
        names = sorted(n for n in celery_app.tasks if not n.startswith("celery."))
        return [(n, n) for n in names]

    def queryset(self, request, queryset):
        return queryset.filter(name=self.value()) if self.value() else queryset


class StuckFilter(admin.SimpleListFilter):
    """Rows the sweep will pick up on its next run, or that wait for a person."""

    title = "needs attention"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [
            ("due", "Due now (pending or lease expired)"),
            ("failed", "Failed"),
            ("stuck", "Stuck (failed, or over ten minutes late)"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "due":
            return queryset.filter(status=OutboxMessage.Status.PENDING, available_at__lte=now) | queryset.filter(
                status__in=[OutboxMessage.Status.PUBLISHED, OutboxMessage.Status.RUNNING], lease_until__lte=now
            )
        if self.value() == "failed":
            return queryset.filter(status=OutboxMessage.Status.FAILED)
        if self.value() == "stuck":
            return insight_selectors.stuck_outbox(queryset)
        return queryset


@admin.register(OutboxMessage)
class OutboxMessageAdmin(
    LastErrorColumnMixin, ViewOnlyMixin, ExactSearchMixin, BigListMixin, ServiceManagedHistoryAdmin
):
    list_display = (
        "id",
        "kind",
        "name",
        "status",
        "tries",
        "publish_count",
        "created_at",
        "available_at",
        "lease_until",
        "done_at",
        "error",
    )
    list_filter = ("status", StuckFilter, "kind", TaskNameFilter)
    exact_search_fields = ("name", "dedupe_key")
    search_fields = ("name",)  # shows the search box; matching is exact (ExactSearchMixin)
    ordering = ("-id",)
    action_form = ResendForm
    actions = ["resend"]
    readonly_fields = [f.name for f in OutboxMessage._meta.fields]

    has_resend_permission = perm_checker("loyalty.resend_outboxmessage")

    @admin.display(description="Attempts")
    def tries(self, obj):
        return f"{obj.attempts}/{obj.max_attempts}"

    @admin.action(description="Re-send selected messages (give a reason)", permissions=["resend"])
    def resend(self, request, queryset):
        rows = list(queryset.order_by("pk")[:1001])
        if len(rows) > 1000:
            self.message_user(request, "Select at most 1000 messages (narrow the filter).", messages.ERROR)
            return
        try:
            n = services.resend_outbox_messages(
                messages=rows, actor=request.user, reason=request.POST.get("reason", "")
            )
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return
        self.message_user(request, f"Re-sent {n} message{'' if n == 1 else 's'}.", messages.SUCCESS)
