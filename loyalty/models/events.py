"""Events out: the event log (feed and webhook source), webhook subscriptions and deliveries, and
the log of every message sent (or not sent) to a member.

An ``Event`` is written in the transaction of the change it reports (``loyalty.events.emit``), and
with it one ``WebhookDelivery`` per matching subscription plus the outbox row that delivers it: a
change that rolls back leaves neither. Status moves are conditional UPDATEs; the allowed sources of
each move come from the ``STATUS_TRANSITIONS`` tables.
"""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from loyalty.kernel.models import choices, optional_ref

from .members import Member
from .outbox import OutboxMessage


def _sources(table: dict, target: str) -> list[str]:
    return sorted(s for s, targets in table.items() if target in targets)


class Event(models.Model):
    """Something that happened, as integrators see it: its ``data`` is the object as its GET endpoint
    showed it when it happened. The id is the feed's cursor and the webhook's ``Loyalty-Event-Id``."""

    type = models.CharField(max_length=64)
    member = optional_ref(Member, on_delete=models.SET_NULL)
    object_type = models.CharField(max_length=64, blank=True, help_text="The model the event is about.")
    object_id = models.CharField(max_length=64, blank=True)
    data = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["type", "id"], name="event_type_id"),
            models.Index(fields=["member", "id"], name="event_member_id"),
            models.Index(fields=["object_type", "object_id"], name="event_object"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.type}"

    def payload(self) -> dict:
        """The JSON body a webhook receives (API.md "Events out")."""
        return {"id": self.pk, "type": self.type, "created_at": self.created_at.isoformat(), "data": self.data}


class WebhookSubscription(models.Model):
    """A receiver: its URL, the event types it wants (``["*"]`` for all) and the secret it verifies.

    The secret is stored as it is, because signing needs it (a digest could only verify); it is shown
    once, on creation or rotation, and never again (not in the API, the admin or the history).
    """

    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text='Event types, or ["*"] for every type.')
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=255, blank=True)
    secret = models.CharField(max_length=100, editable=False)
    secret_prefix = models.CharField(max_length=12, editable=False, help_text="To tell secrets apart.")
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = optional_ref(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(excluded_fields=["secret"])

    class Meta:
        ordering = ["-id"]
        permissions = [("rotate_webhooksubscription", "Can rotate a webhook secret")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.url}"

    def wants(self, event_type: str) -> bool:
        return self.active and ("*" in self.events or event_type in self.events)


class WebhookDelivery(models.Model):
    """One event to one subscription: its attempts, the receiver's last answer, when it is next tried."""

    Status = choices("Status", "pending delivered failed")

    STATUS_TRANSITIONS = {
        Status.PENDING: {Status.PENDING, Status.DELIVERED, Status.FAILED},
        Status.DELIVERED: {Status.PENDING},  # replay
        Status.FAILED: {Status.PENDING, Status.DELIVERED},  # replay; a late duplicate that got through
    }

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=64, help_text="The event's type (kept here for the filter).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    outbox_message = optional_ref(OutboxMessage, on_delete=models.SET_NULL, db_constraint=False)
    created_at = models.DateTimeField(default=timezone.now)
    # Machine moves are conditional UPDATEs; the history records people's replays.
    history = HistoricalRecords()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        permissions = [("replay_webhookdelivery", "Can replay a webhook delivery")]
        indexes = [
            models.Index(fields=["subscription", "-id"], name="delivery_subscription"),
            models.Index(fields=["status", "next_attempt_at"], name="delivery_status_next"),
            models.Index(fields=["event_type", "-id"], name="delivery_type"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "delivered", "failed"]), name="webhookdelivery_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.event_type} → {self.subscription_id} ({self.status})"

    @classmethod
    def sources(cls, target: str) -> list[str]:
        return _sources(cls.STATUS_TRANSITIONS, target)


class MemberNotification(models.Model):
    """Every message to a member, sent or not: what support sees on the member page."""

    Status = choices("Status", "queued sent failed skipped")

    Reason = choices(
        "Reason",
        "opted_out no_email member_closed",
        labels={"opted_out": "Opted out of marketing", "no_email": "No email address"},
    )

    Category = choices(
        "Category",
        "transactional marketing",
        labels={
            "transactional": "About the member's own redemptions, rollbacks, claims",
            "marketing": "Code distribution, reminders (needs marketing_opt_in)",
        },
    )

    STATUS_TRANSITIONS = {
        Status.QUEUED: {Status.SENT, Status.FAILED, Status.QUEUED},
        Status.FAILED: {Status.QUEUED, Status.SENT},  # re-send; a late duplicate that got through
        Status.SENT: {Status.QUEUED},  # re-send by a person
        Status.SKIPPED: set(),
    }

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="notifications")
    template = models.CharField(max_length=64)
    channel = models.CharField(max_length=16, default="email")
    category = models.CharField(max_length=16, choices=Category.choices, default=Category.TRANSACTIONAL)
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(max_length=32, blank=True, choices=Reason.choices)
    recipient = models.CharField(max_length=254, blank=True)
    context = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    dedupe_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    outbox_message = optional_ref(OutboxMessage, on_delete=models.SET_NULL, db_constraint=False)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["member", "-id"], name="notification_member"),
            models.Index(fields=["status", "-id"], name="notification_status"),
            models.Index(fields=["template", "-id"], name="notification_template"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "sent", "failed", "skipped"]), name="notification_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.template} → {self.member_id} ({self.status})"

    @classmethod
    def sources(cls, target: str) -> list[str]:
        return _sources(cls.STATUS_TRANSITIONS, target)
