"""Purchases, versioned rule sets, trackers and the program settings that govern earning."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from simple_history.models import HistoricalRecords

from loyalty.kernel.models import Timestamped, choices, optional_ref

from .members import Member, Metric


class RuleSetImmutableError(Exception):
    """Raised when code tries to edit a published (or retired) rule set or its rules."""


def default_rollback_approval_reasons() -> list[str]:
    return ["fraud"]


def default_rollback_statuses() -> list[str]:
    return ["pending", "processing", "completed", "errored"]


def default_rollback_fulfillment_statuses() -> list[str]:
    # Not once shipped or delivered, unless the parcel came back.
    return ["none", "confirmed_paid", "returned_to_sender", "lost_in_transit"]


class ProgramSettings(models.Model):
    """One row (pk=1) of program-wide settings, edited in the admin and via /program/."""

    currency = models.CharField(max_length=3, default="EUR", help_text="ISO 4217 code of every purchase amount.")
    qualification_period_months = models.PositiveSmallIntegerField(
        default=12,
        choices=[(1, "Calendar month"), (3, "Calendar quarter"), (6, "Half year"), (12, "Calendar year")],
        help_text="Trackers count spend and purchases per period; periods start on January 1st.",
    )
    # Retro claims (purchases made without the card, claimed later).
    retro_enabled = models.BooleanField(default=False, help_text="Allow retro claims at all.")
    retro_window_days = models.PositiveIntegerField(default=90, help_text="Days after the purchase it may be claimed.")
    retro_max_claims_per_30_days = models.PositiveIntegerField(
        default=5, help_text="Claims one member may file in any 30 days."
    )
    retro_enrolment_buffer_hours = models.PositiveIntegerField(
        default=24, help_text="A purchase more than this many hours before enrolment cannot be claimed."
    )
    retro_auto_approve_below_points = models.PositiveIntegerField(
        null=True, blank=True, help_text="Claims whose preview is below this many points approve themselves."
    )
    # Rollback policy (redemptions are undone under these rules).
    rollback_window_days = models.PositiveIntegerField(
        default=30, help_text="Days after a redemption it may be undone."
    )
    rollback_approval_above_points = models.PositiveIntegerField(
        null=True, blank=True, help_text="Rollbacks returning more points than this need a second person."
    )
    rollback_approval_reasons = models.JSONField(
        default=default_rollback_approval_reasons, blank=True, help_text="Reasons that always need a second person."
    )
    rollback_max_per_member_30_days = models.PositiveIntegerField(
        default=3, help_text="Beyond this many rollbacks in 30 days a member's rollbacks need approval and are flagged."
    )
    rollback_partial_allowed = models.BooleanField(default=True)
    rollback_expired_lot_grace_days = models.PositiveIntegerField(
        default=0,
        help_text="Points whose lot expired meanwhile come back with this many days to use them (0: expired).",
    )
    rollback_statuses = models.JSONField(
        default=default_rollback_statuses, blank=True, help_text="Processing statuses that may be rolled back."
    )
    rollback_fulfillment_statuses = models.JSONField(
        default=default_rollback_fulfillment_statuses,
        blank=True,
        help_text='Fulfillment statuses that may be rolled back ("none" = not fulfilled yet).',
    )
    expiry_reminder_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=14,
        help_text="Days before points expire that the member is reminded (once per lot); empty: no reminders.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    # The policy groups, in order: the admin's fieldsets and the /program/ API both list these.
    RETRO_FIELDS = (
        "retro_enabled",
        "retro_window_days",
        "retro_max_claims_per_30_days",
        "retro_enrolment_buffer_hours",
        "retro_auto_approve_below_points",
    )
    ROLLBACK_FIELDS = (
        "rollback_window_days",
        "rollback_approval_above_points",
        "rollback_approval_reasons",
        "rollback_max_per_member_30_days",
        "rollback_partial_allowed",
        "rollback_expired_lot_grace_days",
        "rollback_statuses",
        "rollback_fulfillment_statuses",
    )

    class Meta:
        verbose_name = verbose_name_plural = "program settings"
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="programsettings_singleton")]
        # The dashboard and GET /reports/summary/ (program-wide figures, no member's details).
        permissions = [("view_reports", "Can see the dashboard and the reports")]

    def __str__(self) -> str:
        return "Program settings"

    @classmethod
    def load(cls) -> ProgramSettings:
        """The one row, read once per transaction (a purchase asks for it twice); saving it forgets it."""
        from loyalty.kernel import memo

        return memo.remembered(PROGRAM_SETTINGS_KEY, lambda: cls.objects.get_or_create(pk=1)[0])


PROGRAM_SETTINGS_KEY = "loyalty.program_settings"


def _forget_program_settings(**_) -> None:
    from loyalty.kernel import memo

    memo.forget(PROGRAM_SETTINGS_KEY)


post_save.connect(_forget_program_settings, sender=ProgramSettings, dispatch_uid="program-settings-forget-save")
post_delete.connect(_forget_program_settings, sender=ProgramSettings, dispatch_uid="program-settings-forget-delete")


class RuleSet(Timestamped):
    """A version of the earning rules, in force for ``[valid_from, valid_to)`` once published."""

    Status = choices("Status", "draft published retired")

    STATUS_TRANSITIONS = {
        Status.DRAFT: {Status.PUBLISHED},
        Status.PUBLISHED: {Status.RETIRED},
        Status.RETIRED: set(),
    }

    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True, help_text="Exclusive; empty means open-ended.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    previous = optional_ref("self", related_name="next_versions", help_text="The version this draft was copied from.")
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = optional_ref(settings.AUTH_USER_MODEL)
    created_by = optional_ref(settings.AUTH_USER_MODEL)
    history = HistoricalRecords()

    # Services set this to close a published window or retire a set; every other change is refused.
    _allow_lifecycle_change = False

    class Meta:
        ordering = ["-valid_from", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="ruleset_name_version"),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gte=models.F("valid_from")),
                name="ruleset_valid_range",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "published", "retired"]), name="ruleset_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["status", "valid_from"], name="ruleset_status_from")]
        permissions = [("publish_ruleset", "Can publish or retire a rule set")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def save(self, *args, **kwargs):
        if not self._state.adding and not self._allow_lifecycle_change:
            stored = type(self).objects.filter(pk=self.pk).values_list("status", flat=True).first()
            if stored and stored != self.Status.DRAFT:
                raise RuleSetImmutableError(f"{self} is {stored}; create a new version to change it.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.status != self.Status.DRAFT:
            raise RuleSetImmutableError(f"{self} is {self.status}; it cannot be deleted.")
        return super().delete(*args, **kwargs)

    @property
    def is_editable(self) -> bool:
        return self.status == self.Status.DRAFT


class Rule(models.Model):
    Action = choices(
        "Action",
        "fixed per_amount percent_of_amount",
        labels={
            "fixed": "Fixed points per purchase",
            "per_amount": "Points per unit of amount",
            "percent_of_amount": "Percent of amount, by tier",
        },
    )

    rule_set = models.ForeignKey(RuleSet, on_delete=models.CASCADE, related_name="rules")
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=200)
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=24, choices=Action.choices)
    points = models.PositiveIntegerField(null=True, blank=True, help_text="fixed / per_amount: points awarded.")
    unit_amount = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="per_amount: points per this much spent."
    )
    percent_by_tier = models.JSONField(
        default=dict, blank=True, help_text='percent_of_amount: {"GOLD": 20, "SILVER": 15, "BRONZE": 10}.'
    )
    min_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    channels = models.JSONField(default=list, blank=True, help_text="Only these channels; empty means all.")
    stores = models.JSONField(default=list, blank=True, help_text="Only these stores; empty means all.")
    tiers = models.JSONField(default=list, blank=True, help_text="Only these tier codes; empty means all.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["rule_set", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=["fixed", "per_amount", "percent_of_amount"]), name="rule_action_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self._check_editable()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        self._check_editable()
        return super().delete(*args, **kwargs)

    def _check_editable(self) -> None:
        status = RuleSet.objects.filter(pk=self.rule_set_id).values_list("status", flat=True).first()
        if status and status != RuleSet.Status.DRAFT:
            raise RuleSetImmutableError("Rules of a published or retired rule set cannot change.")


class Transaction(Timestamped):
    """A purchase. With a member it is a loyalty transaction; without, it can be claimed later."""

    external_id = models.CharField(max_length=64, unique=True, help_text="Bill number.")
    occurred_at = models.DateTimeField(db_index=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    channel = models.CharField(max_length=32, blank=True, db_index=True)
    store = models.CharField(max_length=64, blank=True, db_index=True)
    member = optional_ref(Member, related_name="transactions")
    points_earned = models.BigIntegerField(default=0)
    breakdown = models.JSONField(default=dict, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True, help_text="When it earned (live or retro).")
    returned_amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    created_by = optional_ref(settings.AUTH_USER_MODEL)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transaction_amount_positive"),
            models.CheckConstraint(
                condition=Q(returned_amount__gte=0) & Q(returned_amount__lte=models.F("amount")),
                name="transaction_returned_within_amount",
            ),
        ]
        indexes = [
            models.Index(fields=["member", "-occurred_at"], name="transaction_member_occurred"),
            models.Index(fields=["store", "-occurred_at"], name="transaction_store_occurred"),
            models.Index(fields=["amount"], name="transaction_amount"),
            # The report's average order value over a date range.
            models.Index(fields=["occurred_at"], name="transaction_occurred"),
            models.Index(fields=["-occurred_at"], condition=Q(member__isnull=True), name="transaction_nonloyalty"),
        ]

    def __str__(self) -> str:
        return self.external_id


class TransactionReturn(models.Model):
    """A (partial) return of a purchase and the points it took back."""

    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="returns")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    reason = models.CharField(max_length=255, blank=True)
    points_reversed = models.BigIntegerField(default=0)
    debt_created = models.BigIntegerField(default=0)
    created_by = optional_ref(settings.AUTH_USER_MODEL)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="transactionreturn_amount_positive")]

    def __str__(self) -> str:
        return f"return of {self.amount} on {self.transaction_id}"


class MemberTracker(models.Model):
    """Spend and purchase count of a member in one qualification period, counted at processing time."""

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="trackers")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    spend = models.DecimalField(max_digits=16, decimal_places=2, default=0)
    purchases = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["member", "-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["member", "period_start"], name="membertracker_member_period"),
            models.CheckConstraint(condition=Q(spend__gte=0), name="membertracker_spend_gte_0"),
        ]
        indexes = [models.Index(fields=["period_start"], name="membertracker_period")]

    def __str__(self) -> str:
        return f"{self.member_id} {self.period_start:%Y-%m}: {self.spend} / {self.purchases}"

