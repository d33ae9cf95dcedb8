"""Campaigns, code batches, codes, code uses, the code timeline and abuse signals."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from loyalty.kernel.models import Timestamped, choices, optional_ref
from loyalty.models import LedgerEntry, Member, Metric, Segment, Tier


class Campaign(Timestamped):
    Kind = choices("Kind", "percent_discount fixed_discount bonus_points")

    Status = choices("Status", "draft active paused ended")

    STATUS_TRANSITIONS = {
        Status.DRAFT: {Status.ACTIVE, Status.ENDED},
        Status.ACTIVE: {Status.PAUSED, Status.ENDED},
        Status.PAUSED: {Status.ACTIVE, Status.ENDED},
        Status.ENDED: set(),
    }

    Stacking = choices(
        "Stacking",
        "exclusive stackable",
        labels={"exclusive": "Exclusive (alone in an order)", "stackable": "Stackable within its stack group"},
    )

    name = models.CharField(max_length=200, db_index=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    value = models.DecimalField(max_digits=12, decimal_places=2, help_text="Percent, amount, or points.")
    metric = optional_ref(Metric, help_text="Bonus points campaigns: the metric credited.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT, db_index=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Exclusive; empty means open-ended.")
    max_redemptions = models.PositiveIntegerField(null=True, blank=True, help_text="Budget: total code uses.")
    max_discount_total = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True, help_text="Budget: total discount given."
    )
    per_member_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Uses per member.")
    eligible_tiers = models.ManyToManyField(Tier, blank=True, related_name="+")
    eligible_segments = models.ManyToManyField(Segment, blank=True, related_name="+")
    min_order_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    channels = models.JSONField(default=list, blank=True, help_text="Only these channels; empty means all.")
    stacking = models.CharField(max_length=10, choices=Stacking.choices, default=Stacking.EXCLUSIVE)
    stack_group = models.CharField(max_length=64, blank=True)
    max_codes_per_order = models.PositiveSmallIntegerField(default=1)
    code_pattern = models.CharField(
        max_length=64, blank=True, help_text="Default pattern for batches, e.g. SUMMER-####-????."
    )
    # Budget counters, moved only by conditional UPDATEs and backed by CHECK constraints.
    redemptions_count = models.PositiveIntegerField(default=0)
    discount_total = models.DecimalField(max_digits=16, decimal_places=2, default=0)
    bonus_points_total = models.BigIntegerField(default=0)
    created_by = optional_ref(settings.AUTH_USER_MODEL)
    history = HistoricalRecords(m2m_fields=[eligible_tiers, eligible_segments])

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["percent_discount", "fixed_discount", "bonus_points"]), name="campaign_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "active", "paused", "ended"]), name="campaign_status_valid"
            ),
            models.CheckConstraint(condition=Q(value__gt=0), name="campaign_value_positive"),
            models.CheckConstraint(
                condition=Q(max_redemptions__isnull=True) | Q(redemptions_count__lte=F("max_redemptions")),
                name="campaign_redemptions_within_budget",
            ),
            models.CheckConstraint(
                condition=Q(max_discount_total__isnull=True) | Q(discount_total__lte=F("max_discount_total")),
                name="campaign_discount_within_budget",
            ),
            models.CheckConstraint(condition=Q(discount_total__gte=0), name="campaign_discount_total_gte_0"),
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(starts_at__isnull=True) | Q(ends_at__gt=F("starts_at")),
                name="campaign_window_valid",
            ),
        ]
        permissions = [("generate_codes", "Can generate and distribute codes"), ("void_code", "Can void codes")]

    def __str__(self) -> str:
        return self.name


class CodeBatch(models.Model):
    Status = choices("Status", "pending running completed failed")

    STATUS_TRANSITIONS = {
        Status.PENDING: {Status.RUNNING, Status.FAILED},
        Status.RUNNING: {Status.COMPLETED, Status.FAILED},
        Status.FAILED: {Status.RUNNING},
        Status.COMPLETED: set(),
    }

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="batches")
    count = models.PositiveIntegerField()
    pattern = models.CharField(max_length=64, help_text="# digit, ? letter, * any character; other characters kept.")
    charset = models.CharField(max_length=64, blank=True, help_text="For *: empty means the look-alike-free default.")
    max_uses = models.PositiveIntegerField(default=1)
    release_at = models.DateTimeField(null=True, blank=True, help_text="Codes are valid only from then.")
    valid_until = models.DateTimeField(null=True, blank=True)
    segment = optional_ref(Segment, help_text="Personalised distribution: one code per member of this segment.")
    email_members = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    generated = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = optional_ref(settings.AUTH_USER_MODEL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "code batches"
        constraints = [
            models.CheckConstraint(condition=Q(generated__lte=F("count")), name="codebatch_generated_within_count"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running", "completed", "failed"]), name="codebatch_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Batch #{self.pk} of {self.campaign}"


class Code(Timestamped):
    """One code. Kept small: a million rows per campaign is normal."""

    Status = choices("Status", "active redeemed void expired")

    STATUS_TRANSITIONS = {
        Status.ACTIVE: {Status.REDEEMED, Status.VOID, Status.EXPIRED},
        Status.REDEEMED: {Status.ACTIVE, Status.VOID},  # ACTIVE again when a use is rolled back
        Status.EXPIRED: {Status.VOID},
        Status.VOID: set(),
    }

    # Index diet (issue 18, docs/performance.md): every index on this table is paid by every one of
    # a million generated codes. The FK indexes are shadowed by the composite indexes below (same
    # leading column), ``normalized`` is unique through a constraint (no ``varchar_pattern_ops``
    # twin: no query does LIKE on it), and the status and member indexes are partial: a new code is
    # active and unassigned, so generation does not write them.
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="codes", db_index=False)
    batch = optional_ref(CodeBatch, related_name="codes", db_index=False)
    code = models.CharField(max_length=64, help_text="As printed.")
    normalized = models.CharField(max_length=64, help_text="Upper case, separators removed. Unique.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    uses = models.PositiveIntegerField(default=0)
    max_uses = models.PositiveIntegerField(default=1)
    assigned_member = optional_ref(Member, related_name="assigned_codes", db_index=False)
    valid_from = models.DateTimeField(null=True, blank=True, help_text="Release: valid only from then.")
    valid_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(uses__lte=F("max_uses")), name="code_uses_within_max"),
            models.CheckConstraint(condition=Q(max_uses__gte=1), name="code_max_uses_gte_1"),
            models.CheckConstraint(
                condition=Q(status__in=["active", "redeemed", "void", "expired"]), name="code_status_valid"
            ),
            models.UniqueConstraint(fields=["normalized"], name="code_normalized_unique"),
        ]
        indexes = [
            models.Index(fields=["campaign", "-id"], name="code_campaign"),
            # Active codes are most of a table: a status=active list walks code_campaign / the pk.
            models.Index(
                fields=["campaign", "status", "-id"], condition=~Q(status="active"), name="code_campaign_status"
            ),
            models.Index(fields=["batch", "-id"], name="code_batch"),
            # The report's "codes used" per campaign: only the codes used at least once.
            models.Index(fields=["campaign"], condition=Q(uses__gt=0), name="code_campaign_used"),
            models.Index(fields=["status", "-id"], condition=~Q(status="active"), name="code_status"),
            models.Index(
                fields=["assigned_member", "-id"],
                condition=Q(assigned_member__isnull=False),
                name="code_assigned_member",
            ),
            models.Index(
                fields=["campaign", "id"],
                condition=Q(assigned_member__isnull=True, uses=0, status="active"),
                name="code_pool_unassigned",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class CampaignMemberUsage(models.Model):
    """How many times a member used a campaign: the per-member limit is a conditional UPDATE on this row."""

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+")
    uses = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "member"], name="campaignmemberusage_unique")]

    def __str__(self) -> str:
        return f"{self.member_id} used {self.campaign_id} {self.uses}x"


class CodeRedemption(models.Model):
    """One use of one code in one order."""

    Status = choices("Status", "applied rolled_back")

    STATUS_TRANSITIONS = {Status.APPLIED: {Status.ROLLED_BACK}, Status.ROLLED_BACK: set()}

    code = models.ForeignKey(Code, on_delete=models.PROTECT, related_name="redemptions")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="code_redemptions")
    member = optional_ref(Member)
    order_id = models.CharField(max_length=64, blank=True, db_index=True)
    order_amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    channel = models.CharField(max_length=32, blank=True)
    discount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    bonus_points = models.BigIntegerField(default=0)
    ledger_entry = optional_ref(LedgerEntry)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.APPLIED)
    redeemed_by = optional_ref(settings.AUTH_USER_MODEL)
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    rolled_back_by = optional_ref(settings.AUTH_USER_MODEL)
    rollback_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["applied", "rolled_back"]), name="coderedemption_status_valid"
            ),
            models.CheckConstraint(condition=Q(discount__gte=0), name="coderedemption_discount_gte_0"),
        ]
        indexes = [
            models.Index(fields=["campaign", "-created_at"], name="coderedemption_campaign"),
            # The report's date range (per-day code uses, per campaign in the range).
            models.Index(fields=["created_at"], name="coderedemption_created"),
            models.Index(fields=["member", "-created_at"], name="coderedemption_member"),
        ]

    def __str__(self) -> str:
        return f"{self.code} in {self.order_id or 'order'}"


class CodeEvent(models.Model):
    """The code's timeline for disputes: validations (kept for a while), redemptions, rollbacks, voids.

    Generation and release are read from the batch, so bulk generation writes no event rows.
    """

    Kind = choices("Kind", "validated redeemed rolled_back voided assigned expired created")

    code = optional_ref(Code, on_delete=models.CASCADE, related_name="events")
    code_text = models.CharField(max_length=64, help_text="Normalised code as presented (also for unknown codes).")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    result = models.CharField(max_length=32, blank=True, help_text="valid, or the reason it was refused.")
    member = optional_ref(Member, on_delete=models.SET_NULL)
    actor = optional_ref(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL)
    client = models.CharField(max_length=150, blank=True, help_text="API user or admin user.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    order_id = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["code", "-created_at"], name="codeevent_code"),
            models.Index(fields=["code_text", "-created_at"], name="codeevent_code_text"),
            models.Index(fields=["kind", "created_at"], name="codeevent_kind_created"),
        ]

    def __str__(self) -> str:
        return f"{self.code_text} {self.kind} {self.result}"


class AbuseSignal(models.Model):
    """An anomaly for the Anomalies screen: repeated failed validations, or rapid redemptions."""

    Kind = choices(
        "Kind",
        "failed_validations rapid_redemptions repeated_rollbacks",
        labels={
            "failed_validations": "Repeated failed validations",
            "rapid_redemptions": "Many redemptions in a short window",
        },
    )

    Subject = choices("Subject", "client ip member", labels={"ip": "IP address"})

    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    subject_type = models.CharField(max_length=8, choices=Subject.choices)
    subject = models.CharField(max_length=150, db_index=True)
    count = models.PositiveIntegerField()
    window_seconds = models.PositiveIntegerField()
    locked_until = models.DateTimeField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    reviewed = models.BooleanField(default=False, db_index=True)
    reviewed_by = optional_ref(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "anomaly"
        verbose_name_plural = "anomalies"

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject_type} {self.subject}"
