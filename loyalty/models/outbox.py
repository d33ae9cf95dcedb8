"""The transactional outbox: every side effect (Celery work, member emails, webhooks) as a row.

A row is written in the same transaction as the change that causes it (``loyalty.outbox``), so a
change that rolls back leaves no side effect behind, and a committed change always has one waiting,
whatever happens to the broker or the process afterwards. The relay and the consumers move
``status`` with conditional UPDATEs whose allowed source statuses come from ``STATUS_TRANSITIONS``.
"""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from loyalty.kernel.models import choices


class OutboxMessage(models.Model):
    Kind = choices("Kind", "task email webhook", labels={"email": "Member email", "webhook": "Webhook delivery"})

    # pending: waiting to be published (now, or at available_at)
    # published: handed to the broker, not started yet
    # running: a worker is on it, under a lease
    # failed: gave up after max_attempts; needs a person
    Status = choices("Status", "pending published running done failed")

    # Self-loops are real moves here: a re-publish after an expired lease (published -> published)
    # and a duplicate delivery taking over a dead worker's run (running -> running).
    STATUS_TRANSITIONS = {
        Status.PENDING: {Status.PUBLISHED, Status.RUNNING, Status.DONE},
        Status.PUBLISHED: {Status.PUBLISHED, Status.RUNNING, Status.DONE, Status.PENDING},
        Status.RUNNING: {Status.RUNNING, Status.DONE, Status.PENDING, Status.PUBLISHED, Status.FAILED},
        Status.DONE: {Status.PENDING},  # re-send by a person
        Status.FAILED: {Status.PENDING, Status.RUNNING, Status.DONE},  # re-send; a late duplicate finishing
    }

    kind = models.CharField(max_length=32, choices=Kind.choices, default=Kind.TASK)
    name = models.CharField(max_length=200, help_text="The Celery task that does the work.")
    args = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    kwargs = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    dedupe_key = models.CharField(
        max_length=200,
        null=True,
        blank=True,
        unique=True,
        help_text="At most one message per key (while the row is kept, see OUTBOX_RETENTION_DAYS).",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Runs started by a worker (or inline).")
    max_attempts = models.PositiveIntegerField(default=8)
    publish_count = models.PositiveIntegerField(default=0, help_text="Times handed to the broker.")
    available_at = models.DateTimeField(default=timezone.now, help_text="Not published before this (backoff).")
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="Published or running: re-published by the sweep after this."
    )
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    # Machine moves are conditional UPDATEs and leave no history rows; what history records is
    # people: a re-send from the admin, with who and why (see docs/operations.md).
    history = HistoricalRecords()

    class Meta:
        ordering = ["-id"]
        permissions = [("resend_outboxmessage", "Can re-send outbox messages")]
        indexes = [
            models.Index(fields=["status", "available_at"], name="outbox_status_available"),
            models.Index(
                fields=["lease_until"],
                name="outbox_leased",
                condition=Q(status__in=["published", "running"]),
            ),
            models.Index(fields=["kind", "status"], name="outbox_kind_status"),
            models.Index(fields=["name", "status"], name="outbox_name_status"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "published", "running", "done", "failed"]),
                name="outbox_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name} ({self.status})"

    @classmethod
    def sources(cls, target: str) -> list[str]:
        """The statuses a row may move to ``target`` from (the WHERE of a conditional UPDATE)."""
        return sorted(s for s, targets in cls.STATUS_TRANSITIONS.items() if target in targets)
