"""Retro claims: a purchase made without the loyalty card, claimed and approved later."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from loyalty.kernel.models import choices, optional_ref
from loyalty.models import LedgerEntry, Member, Transaction


class RetroClaim(models.Model):
    Status = choices("Status", "submitted approved processed rejected failed")

    STATUS_TRANSITIONS = {
        Status.SUBMITTED: {Status.APPROVED, Status.REJECTED},
        Status.APPROVED: {Status.PROCESSED, Status.FAILED},
        Status.FAILED: {Status.APPROVED, Status.REJECTED},  # retry, or give up
        Status.PROCESSED: set(),
        Status.REJECTED: set(),
    }
    LIVE_STATUSES = [Status.SUBMITTED, Status.APPROVED, Status.PROCESSED, Status.FAILED]

    Channel = choices("Channel", "admin api", labels={"api": "API"})

    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="retro_claims")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="retro_claims")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUBMITTED)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.API)
    note = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    preview = models.JSONField(default=dict, blank=True, help_text="Points and breakdown computed at submission.")
    preview_points = models.BigIntegerField(default=0)
    approved_by = optional_ref(settings.AUTH_USER_MODEL)
    approved_at = models.DateTimeField(null=True, blank=True)
    auto_approved = models.BooleanField(default=False)
    rejected_by = optional_ref(settings.AUTH_USER_MODEL)
    rejection_reason = models.CharField(max_length=255, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    points_awarded = models.BigIntegerField(null=True, blank=True)
    breakdown = models.JSONField(default=dict, blank=True, help_text="What processing actually computed.")
    ledger_entry = optional_ref(LedgerEntry)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["transaction"],
                condition=Q(status__in=["submitted", "approved", "processed", "failed"]),
                name="retroclaim_one_live_claim_per_transaction",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["submitted", "approved", "processed", "rejected", "failed"]),
                name="retroclaim_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="retroclaim_queue"),
            models.Index(fields=["member", "-created_at"], name="retroclaim_member"),
        ]
        permissions = [("approve_retroclaim", "Can approve or reject retro claims")]

    def __str__(self) -> str:
        return f"Retro claim #{self.pk} ({self.status})"
