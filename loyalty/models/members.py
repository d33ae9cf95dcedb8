"""Members, tiers, tier history, metrics and segments."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from loyalty.kernel.models import Timestamped, choices, optional_ref


class Metric(Timestamped):
    """A point currency (points, miles, status credits...)."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    expiry_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days after earning that points expire; empty means never."
    )
    pending_days = models.PositiveIntegerField(
        default=0, help_text="Days earned points stay pending (the return window) before they can be spent."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Tier(Timestamped):
    """A membership level; a higher ``rank`` is a better tier."""

    code = models.SlugField(max_length=32, unique=True, help_text="E.g. GOLD.")
    name = models.CharField(max_length=100)
    rank = models.PositiveSmallIntegerField(unique=True)
    spend_threshold = models.DecimalField(
        max_digits=14, decimal_places=2, default=0, help_text="Spend in the qualification period to reach it."
    )
    purchase_threshold = models.PositiveIntegerField(
        default=0, help_text="Purchases in the qualification period to reach it."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["rank"]
        constraints = [models.CheckConstraint(condition=Q(spend_threshold__gte=0), name="tier_spend_threshold_gte_0")]

    def __str__(self) -> str:
        return self.name


class Member(Timestamped):
    Status = choices("Status", "active suspended closed")

    STATUS_TRANSITIONS = {
        Status.ACTIVE: {Status.SUSPENDED, Status.CLOSED},
        Status.SUSPENDED: {Status.ACTIVE, Status.CLOSED},
        Status.CLOSED: set(),
    }

    external_id = models.CharField(max_length=64, unique=True, help_text="The brand's own customer id.")
    email = models.EmailField(blank=True, db_index=True)
    name = models.CharField(max_length=200, blank=True, db_index=True)
    phone = models.CharField(max_length=32, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    enrolled_at = models.DateTimeField(default=timezone.now, db_index=True)
    tier = optional_ref(Tier)
    marketing_opt_in = models.BooleanField(
        default=True,
        help_text="Off: no code distributions or expiry reminders (messages about the member's own "
        "redemptions, rollbacks and claims still go).",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["active", "suspended", "closed"]), name="member_status_valid"
            )
        ]
        indexes = [models.Index(fields=["tier", "-id"], name="member_tier_idx")]
        permissions = [
            ("adjust_points", "Can adjust a member's points"),
            ("change_member_tier", "Can change a member's tier manually"),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} {self.name}".strip()


class TierMembership(models.Model):
    """Tier history: half-open ``[valid_from, valid_to)`` intervals that never overlap."""

    Cause = choices(
        "Cause",
        "enrolment manual qualification requalification import",
        labels={"manual": "Manual change", "requalification": "Period-end re-evaluation"},
    )

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="tier_history")
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True)
    cause = models.CharField(max_length=20, choices=Cause.choices, default=Cause.MANUAL)
    reason = models.CharField(max_length=255, blank=True)
    changed_by = optional_ref(settings.AUTH_USER_MODEL)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["member", "-valid_from"]
        indexes = [models.Index(fields=["member", "valid_from"], name="tiermembership_member_from")]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gte=models.F("valid_from")),
                name="tiermembership_valid_range",
            ),
            models.UniqueConstraint(
                fields=["member"], condition=Q(valid_to__isnull=True), name="tiermembership_one_open_interval"
            ),
            # PostgreSQL adds an exclusion constraint (no overlapping intervals) in migration 0002.
        ]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.tier} [{self.valid_from:%Y-%m-%d %H:%M}, {self.valid_to or '…'})"


class Segment(Timestamped):
    """A named static list of members (for targeting and code distribution)."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(Member, blank=True, related_name="segments")
    history = HistoricalRecords(m2m_fields=[members])

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name
