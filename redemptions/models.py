"""Reward responses (redemptions and awards) with their three lifecycles, and rollbacks."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from loyalty.kernel.models import Timestamped, choices, optional_ref
from loyalty.models import LedgerEntry, Member, Metric, Reward
from promotions.models import Campaign, Code


class RewardCodePool(models.Model):
    """The campaign whose codes a discount_code reward issues."""

    reward = models.OneToOneField(Reward, on_delete=models.CASCADE, primary_key=True, related_name="code_pool")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="+")
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"{self.reward} ← {self.campaign}"


class Redemption(Timestamped):
    """One reward response: a redemption (points spent) or an award (free)."""

    Kind = choices("Kind", "redemption award")

    Status = choices("Status", "pending processing completed canceled errored")

    STATUS_TRANSITIONS = {
        Status.PENDING: {Status.PROCESSING, Status.COMPLETED, Status.CANCELED, Status.ERRORED},
        Status.PROCESSING: {Status.COMPLETED, Status.CANCELED, Status.ERRORED},
        Status.ERRORED: {Status.PENDING, Status.PROCESSING, Status.CANCELED},
        Status.COMPLETED: {Status.CANCELED},
        Status.CANCELED: set(),
    }

    AwardStatus = choices("AwardStatus", "pending awarded claimed canceled")

    AWARD_TRANSITIONS = {
        AwardStatus.PENDING: {AwardStatus.AWARDED, AwardStatus.CANCELED},
        AwardStatus.AWARDED: {AwardStatus.CLAIMED, AwardStatus.CANCELED},
        AwardStatus.CLAIMED: {AwardStatus.CANCELED},
        AwardStatus.CANCELED: set(),
    }

    ApprovalStatus = choices("ApprovalStatus", "submitted approved rejected returned")

    APPROVAL_TRANSITIONS = {
        None: {ApprovalStatus.SUBMITTED},
        ApprovalStatus.SUBMITTED: {ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.RETURNED},
        ApprovalStatus.APPROVED: set(),
        ApprovalStatus.REJECTED: set(),
        ApprovalStatus.RETURNED: set(),
    }

    Fulfillment = choices(
        "Fulfillment",
        "confirmed_paid shipped delivered returned_to_sender lost_in_transit",
        labels={"confirmed_paid": "Confirmed / paid"},
    )

    FULFILLMENT_TRANSITIONS = {
        None: {Fulfillment.CONFIRMED_PAID},
        Fulfillment.CONFIRMED_PAID: {Fulfillment.SHIPPED},
        Fulfillment.SHIPPED: {Fulfillment.DELIVERED, Fulfillment.RETURNED_TO_SENDER, Fulfillment.LOST_IN_TRANSIT},
        Fulfillment.RETURNED_TO_SENDER: {Fulfillment.SHIPPED},
        Fulfillment.LOST_IN_TRANSIT: {Fulfillment.SHIPPED},
        Fulfillment.DELIVERED: set(),
    }

    Channel = choices("Channel", "admin api import", labels={"api": "API"})

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.REDEMPTION)
    # db_index=False: redemption_member / redemption_reward below start with the same column (issue 18).
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="redemptions", db_index=False)
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="responses", db_index=False)
    quantity = models.PositiveIntegerField(default=1)
    points_spent = models.BigIntegerField(default=0)
    metric = optional_ref(Metric)
    ledger_entry = optional_ref(LedgerEntry)
    points_returned = models.BigIntegerField(default=0, help_text="Given back by reject, return or rollbacks.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    award_status = models.CharField(max_length=10, choices=AwardStatus.choices, null=True, blank=True)
    approval_status = models.CharField(max_length=10, choices=ApprovalStatus.choices, null=True, blank=True)
    fulfillment_status = models.CharField(max_length=20, choices=Fulfillment.choices, null=True, blank=True)
    tracking_ref = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    issued_code = optional_ref(Code, db_index=False)  # indexed by redemption_issued_code
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.API)
    reason = models.CharField(max_length=255, blank=True, help_text="Why an award was given.")
    external_ref = models.CharField(max_length=64, blank=True, help_text="Id in a legacy platform (imports).")
    stock_returned = models.BooleanField(default=False)
    created_by = optional_ref(settings.AUTH_USER_MODEL)
    decided_by = optional_ref(settings.AUTH_USER_MODEL)
    decision_reason = models.CharField(max_length=255, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="redemption_quantity_gte_1"),
            models.CheckConstraint(condition=Q(points_spent__gte=0), name="redemption_points_spent_gte_0"),
            models.CheckConstraint(
                condition=Q(points_returned__gte=0) & Q(points_returned__lte=models.F("points_spent")),
                name="redemption_points_returned_within_spent",
            ),
            models.CheckConstraint(condition=Q(kind__in=["redemption", "award"]), name="redemption_kind_valid"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "processing", "completed", "canceled", "errored"]),
                name="redemption_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(kind="redemption", award_status__isnull=True)
                | Q(kind="award", award_status__in=["pending", "awarded", "claimed", "canceled"]),
                name="redemption_award_status_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(approval_status__isnull=True)
                | Q(approval_status__in=["submitted", "approved", "rejected", "returned"]),
                name="redemption_approval_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(fulfillment_status__isnull=True)
                | Q(
                    fulfillment_status__in=[
                        "confirmed_paid",
                        "shipped",
                        "delivered",
                        "returned_to_sender",
                        "lost_in_transit",
                    ]
                ),
                name="redemption_fulfillment_status_valid",
            ),
            models.UniqueConstraint(
                fields=["external_ref"], condition=~Q(external_ref=""), name="redemption_external_ref_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="redemption_created"),
            models.Index(fields=["member", "-created_at"], name="redemption_member"),
            models.Index(fields=["reward", "-created_at"], name="redemption_reward"),
            models.Index(fields=["status", "-created_at"], name="redemption_status"),
            models.Index(fields=["kind", "award_status", "-created_at"], name="redemption_kind_award"),
            models.Index(fields=["kind", "-created_at", "-id"], name="redemption_kind_created"),
            models.Index(fields=["approval_status", "created_at"], name="redemption_approval_queue"),
            models.Index(fields=["fulfillment_status", "-created_at"], name="redemption_fulfillment"),
            models.Index(fields=["issued_code"], name="redemption_issued_code"),
            # "Rejected before?" on every redemption: a new redemption is never in it.
            models.Index(
                fields=["member", "reward"], condition=Q(approval_status="rejected"), name="redemption_rejected"
            ),
            models.Index(fields=["external_ref"], name="redemption_external_ref"),
        ]
        permissions = [
            ("approve_redemption", "Can approve, reject or return redemptions"),
            ("award_reward", "Can give rewards for free (awards)"),
            ("change_fulfillment", "Can change fulfillment status"),
            ("import_redemptions", "Can import legacy redemptions"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"


class Award(Redemption):
    """The Awards screen: the same table, awards only."""

    class Meta:
        proxy = True


# An award's history is its redemption row's history (services save Redemption instances); this
# lets django-simple-history find that manager from the proxy, e.g. for the award's History page.
Award._meta.simple_history_manager_attribute = Redemption._meta.simple_history_manager_attribute


class Rollback(Timestamped):
    """Undoing a redemption, fully or partly, under the program's rollback policy."""

    Reason = choices("Reason", "customer_request technical_error fraud other")

    Status = choices("Status", "pending_approval executed rejected")

    Via = choices("Via", "rollback cancel")

    STATUS_TRANSITIONS = {
        None: {Status.PENDING_APPROVAL, Status.EXECUTED},
        Status.PENDING_APPROVAL: {Status.EXECUTED, Status.REJECTED},
        Status.EXECUTED: set(),
        Status.REJECTED: set(),
    }

    redemption = models.ForeignKey(Redemption, on_delete=models.PROTECT, related_name="rollbacks")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="rollbacks")
    full = models.BooleanField(default=True)
    points_requested = models.BigIntegerField(default=0)
    points_returned = models.BigIntegerField(default=0)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    via = models.CharField(
        max_length=10,
        choices=Via.choices,
        default=Via.ROLLBACK,
        help_text="Requested as a rollback, or by canceling the redemption or award (the same policy applies).",
    )
    note = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    approval_required_because = models.CharField(max_length=255, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = optional_ref(settings.AUTH_USER_MODEL)
    rejected_by = optional_ref(settings.AUTH_USER_MODEL)
    decision_note = models.CharField(max_length=255, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    ledger_entries = models.ManyToManyField(LedgerEntry, blank=True, related_name="+")
    code_voided = models.BooleanField(default=False)
    stock_restored = models.BooleanField(default=False)
    notified = models.BooleanField(default=False)
    notified_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending_approval", "executed", "rejected"]), name="rollback_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(reason__in=["customer_request", "technical_error", "fraud", "other"]),
                name="rollback_reason_valid",
            ),
            models.CheckConstraint(
                condition=Q(points_returned__gte=0) & Q(points_requested__gte=0), name="rollback_points_gte_0"
            ),
            models.CheckConstraint(condition=Q(via__in=["rollback", "cancel"]), name="rollback_via_valid"),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="rollback_queue"),
            models.Index(fields=["member", "-created_at"], name="rollback_member"),
            models.Index(fields=["reason", "created_at"], name="rollback_reason"),
            models.Index(fields=["requested_by", "created_at"], name="rollback_requested_by"),
        ]
        permissions = [("approve_rollback", "Can approve or reject rollbacks")]

    def __str__(self) -> str:
        return f"Rollback #{self.pk} of {self.redemption_id} ({self.status})"
