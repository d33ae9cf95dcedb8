"""Events out in the admin: webhook subscriptions (secret shown once, rotatable), the delivery log
(filters: subscription, type, status; a replay action), the event log and the member messages."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from loyalty.kernel.admin import (
    BigListMixin,
    ExactSearchMixin,
    LastErrorColumnMixin,
    ReadOnlyAdminMixin,
    ServiceManagedHistoryAdmin,
    ServiceSaveMixin,
    ViewOnlyMixin,
    perm_checker,
)

from ..events import EVENT_TYPES, webhooks
from ..exceptions import DomainError
from ..models import Event, MemberNotification, WebhookDelivery, WebhookSubscription
from .panels import MemberPanel, register_member_panel

EVENT_CHOICES = [("*", "Every event type"), *((t, t) for t in sorted(EVENT_TYPES))]


class SubscriptionForm(forms.ModelForm):
    events = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookSubscription
        fields = ["url", "events", "active", "description"]


def _secret_message(request, model_admin, sub, secret: str, what: str) -> None:
    model_admin.message_user(
        request,
        format_html("{} for {}: <code>{}</code>. Copy it now: it is not shown again.", what, sub.url, secret),
        messages.WARNING,
    )


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ServiceSaveMixin, ServiceManagedHistoryAdmin):
    form = SubscriptionForm
    list_display = ("id", "url", "event_list", "active", "description", "secret_prefix", "created_at")
    list_filter = ("active",)
    search_fields = ("url", "description")
    readonly_fields = ("secret_prefix", "secret_rotated_at", "created_by", "created_at", "updated_at")
    autocomplete_fields = ()
    actions = ["rotate"]

    @admin.display(description="Events")
    def event_list(self, obj):
        return ", ".join(obj.events)

    def save_model(self, request, obj, form, change):
        data = {k: form.cleaned_data[k] for k in ("url", "events", "active", "description")}
        try:
            if change:
                saved = webhooks.update_subscription(subscription=obj, actor=request.user, **data)
            else:
                saved, secret = webhooks.create_subscription(actor=request.user, **data)
                _secret_message(request, self, saved, secret, "The signing secret")
        except DomainError as exc:
            self.refuse_save(request, exc)
            return
        self.adopt_saved(obj, saved)

    def delete_model(self, request, obj):
        webhooks.delete_subscription(subscription=obj, actor=request.user)

    has_rotate_permission = perm_checker("loyalty.rotate_webhooksubscription")

    @admin.action(description="Rotate the secret of selected subscriptions (shown once)", permissions=["rotate"])
    def rotate(self, request, queryset):
        for sub in queryset[:20]:
            sub, secret = webhooks.rotate_secret(subscription=sub, actor=request.user)
            _secret_message(request, self, sub, secret, "New signing secret")


class ReplayForm(admin.helpers.ActionForm):
    reason = forms.CharField(required=False, max_length=200, label="Reason", help_text="Kept in the history.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(
    LastErrorColumnMixin, ViewOnlyMixin, ExactSearchMixin, BigListMixin, ServiceManagedHistoryAdmin
):
    list_display = (
        "id",
        "subscription",
        "event_link",
        "event_type",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
        "error",
    )
    list_filter = ("status", "event_type", "subscription")
    list_select_related = ("subscription",)
    search_fields = ("event__id",)
    exact_search_fields = ("event_id",)
    autocomplete_fields = ("subscription",)
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    ordering = ("-id",)
    action_form = ReplayForm
    actions = ["replay"]

    has_replay_permission = perm_checker("loyalty.replay_webhookdelivery")

    @admin.display(description="Event")
    def event_link(self, obj):
        return f"#{obj.event_id}"

    @admin.action(description="Replay selected deliveries (give a reason)", permissions=["replay"])
    def replay(self, request, queryset):
        rows = list(queryset.order_by("pk")[:1001])
        if len(rows) > 1000:
            self.message_user(request, "Select at most 1000 deliveries (narrow the filter).", messages.ERROR)
            return
        reason = request.POST.get("reason", "") or "Replayed in the admin"
        for delivery in rows:
            webhooks.replay_delivery(delivery=delivery, actor=request.user, reason=reason)
        self.message_user(
            request, f"Replaying {len(rows)} deliver{'y' if len(rows) == 1 else 'ies'}.", messages.SUCCESS
        )


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, ExactSearchMixin, BigListMixin, admin.ModelAdmin):
    """The event log (append-only: it is its own history)."""

    list_display = ("id", "type", "member", "object_type", "object_id", "created_at")
    list_filter = ("type",)
    list_select_related = ("member",)
    search_fields = ("object_id",)
    exact_search_fields = ("object_id", "member__external_id")
    autocomplete_fields = ("member",)
    readonly_fields = [f.name for f in Event._meta.fields]
    ordering = ("-id",)


@admin.register(MemberNotification)
class MemberNotificationAdmin(ReadOnlyAdminMixin, ExactSearchMixin, BigListMixin, admin.ModelAdmin):
    """Every message to a member, sent or skipped (append-only log: its rows are their own history)."""

    list_display = ("id", "member", "template", "category", "status", "reason", "created_at", "sent_at")
    list_filter = ("status", "reason", "category", "template")
    list_select_related = ("member",)
    search_fields = ("member__external_id",)
    exact_search_fields = ("member__external_id", "recipient")
    autocomplete_fields = ("member",)
    readonly_fields = [f.name for f in MemberNotification._meta.fields]
    ordering = ("-id",)


RECENT_NOTIFICATIONS = 20


def _notifications_panel(request, member) -> dict | None:
    if not request.user.has_perm("loyalty.view_membernotification"):
        return None
    rows = list(MemberNotification.objects.filter(member=member).order_by("-id")[: RECENT_NOTIFICATIONS + 1])
    more = reverse("admin:loyalty_membernotification_changelist") + "?" + urlencode({"member__id__exact": member.pk})
    return {
        "rows": rows[:RECENT_NOTIFICATIONS],
        "more_url": more if len(rows) > RECENT_NOTIFICATIONS else None,
        "opted_in": member.marketing_opt_in,
    }


register_member_panel(
    MemberPanel(
        key="notifications",
        title="Messages",
        template="admin/loyalty/member_notifications_panel.html",
        context=_notifications_panel,
        order=40,  # before retro (50): its tests read the last panel
    )
)
