"""An approval queue: the change list of a screen in "queue" mode at ``<model>/queue/``.

The same list, filters, search and bulk actions (with their confirm pages), narrowed to what waits
for a decision, oldest first. The redemptions, rollbacks and retro claims queues are this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.urls import path, reverse


class QueueMixin:
    queue_title = "Approval queue"
    queue_ordering: Sequence[str] = ("created_at", "id")
    queue_list_display: Sequence[Any] | None = None  # None: the list's own
    queue_list_filter: Sequence[Any] | None = None
    queue_actions: Sequence[str] | None = None  # the bulk actions offered in the queue; None: all

    def in_queue(self, request) -> bool:
        return getattr(request, "_admin_queue", False)

    def queue_queryset(self, request, queryset: QuerySet) -> QuerySet:
        """What waits for a decision (``queryset`` is the list's own)."""
        raise NotImplementedError

    def queue_context(self, request) -> dict[str, Any]:
        return {}

    def queue_url(self) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_queue")

    def get_urls(self):
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [path("queue/", self.admin_site.admin_view(self.queue_view), name=f"{info}_queue"), *super().get_urls()]

    def queue_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        request._admin_queue = True
        context = {
            "title": self.queue_title,
            "subtitle": None,
            "queue": True,
            "changelist_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"),
            **self.queue_context(request),
        }
        return self.changelist_view(request, extra_context=context)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, extra_context={"queue_url": self.queue_url(), **(extra_context or {})})

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return self.queue_queryset(request, queryset) if self.in_queue(request) else queryset

    def get_ordering(self, request):
        return self.queue_ordering if self.in_queue(request) else super().get_ordering(request)

    def get_list_display(self, request):
        if self.in_queue(request) and self.queue_list_display is not None:
            return self.queue_list_display
        return super().get_list_display(request)

    def get_list_filter(self, request):
        if self.in_queue(request) and self.queue_list_filter is not None:
            return self.queue_list_filter
        return super().get_list_filter(request)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if self.in_queue(request) and self.queue_actions is not None:
            return {name: action for name, action in actions.items() if name in self.queue_actions}
        return actions
