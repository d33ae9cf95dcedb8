"""The append-only ledger, point lots and cached balances."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from loyalty.kernel.models import choices, optional_ref

from .members import Member, Metric


class LedgerImmutableError(Exception):
    """Raised when code tries to change or delete an append-only row."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise LedgerImmutableError(f"{self.model.__name__} rows are append-only.")

    def delete(self):
        raise LedgerImmutableError(f"{self.model.__name__} rows are append-only.")

    _update = update


class AppendOnlyModel(models.Model):
    """A row that may be inserted once and never changed (PostgreSQL enforces it with a trigger)."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise LedgerImmutableError(f"{type(self).__name__} rows are append-only.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise LedgerImmutableError(f"{type(self).__name__} rows are append-only.")


class LedgerEntry(AppendOnlyModel):
    Kind = choices(
        "Kind",
        "earn redeem rollback retro adjustment expiry award return",
        labels={"retro": "Retro claim", "return": "Purchase return"},
    )

    # db_index=False: the ledger_member_* indexes below start with member (issue 18, the index diet).
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="ledger_entries", db_index=False)
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = models.BigIntegerField(help_text="Signed: credits are positive, debits negative.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    effective_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="For credits: when the lot expires.")
    reverses = optional_ref("self", related_name="reversals")
    source_type = models.CharField(max_length=32, blank=True)
    source_id = models.CharField(max_length=64, blank=True)
    actor = optional_ref(settings.AUTH_USER_MODEL)
    reason = models.TextField(blank=True)
    breakdown = models.JSONField(default=dict, blank=True)
    # Unique through a constraint: no varchar_pattern_ops twin (nothing searches it with LIKE).
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="ledgerentry_idempotency_key_unique"),
            models.CheckConstraint(condition=~Q(amount=0), name="ledgerentry_amount_nonzero"),
            models.CheckConstraint(
                condition=Q(
                    kind__in=["earn", "redeem", "rollback", "retro", "adjustment", "expiry", "award", "return"]
                ),
                name="ledgerentry_kind_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["member", "metric", "-created_at"], name="ledger_member_metric_created"),
            models.Index(fields=["member", "-created_at"], name="ledger_member_created"),
            # Covers the report's breakage (issued and expired points per metric over a range): the
            # ledger is append-only, so an index-only scan of it rarely visits the heap.
            models.Index(fields=["kind", "-created_at"], include=["metric", "amount"], name="ledger_kind_created"),
            models.Index(fields=["source_type", "source_id"], name="ledger_source"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.amount:+d} {self.metric_id}"

    @property
    def is_credit(self) -> bool:
        return self.amount > 0


class PointLot(models.Model):
    """What is left of one credit entry; debits consume lots soonest-expiring first.

    ``remaining`` is the only mutable figure; it always equals ``amount`` minus the lot's
    consumptions (``verify_ledger`` proves it).
    """

    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="lot")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+")
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField()
    remaining = models.BigIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    pending = models.BooleanField(default=False, help_text="Earned but not yet spendable.")
    available_at = models.DateTimeField(null=True, blank=True, help_text="When pending points become spendable.")
    restored_from = optional_ref(
        "self", related_name="restorations", help_text="The lot a rollback gave these points back to (same expiry)."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["member", "metric", "expires_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=models.F("amount")), name="pointlot_remaining_range"
            ),
        ]
        indexes = [
            models.Index(
                fields=["member", "metric", "expires_at", "id"],
                condition=Q(remaining__gt=0),
                name="pointlot_open_by_expiry",
            ),
            # Covering (PostgreSQL): the report's points expiring soon is an index-only scan. No cost
            # to HOT updates: ``remaining`` is in the condition already.
            models.Index(
                fields=["expires_at"],
                condition=Q(remaining__gt=0),
                include=["metric", "remaining"],
                name="pointlot_open_expiry",
            ),
            models.Index(fields=["available_at"], condition=Q(pending=True), name="pointlot_pending_until"),
        ]

    def __str__(self) -> str:
        return f"lot {self.pk}: {self.remaining}/{self.amount} until {self.expires_at or 'never'}"


class LotConsumption(AppendOnlyModel):
    """How many points of which lot a debit entry took.

    A debit that the lots could not cover (a purchase return after the points were spent) leaves a
    debt; later credits repay it with consumptions of their own lots against that debit.
    """

    debit = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="consumptions")
    lot = models.ForeignKey(PointLot, on_delete=models.PROTECT, related_name="consumptions")
    amount = models.BigIntegerField()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="lotconsumption_amount_positive")]

    def __str__(self) -> str:
        return f"{self.amount} from lot {self.lot_id} by entry {self.debit_id}"


class PointBalance(models.Model):
    """Cached figures per (member, metric), moved in the same transaction as each entry."""

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="balances")
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="+")
    balance = models.BigIntegerField(default=0, help_text="Spendable points.")
    pending = models.BigIntegerField(default=0, help_text="Earned, not yet spendable.")
    debt = models.BigIntegerField(default=0, help_text="Owed from returns; repaid by the next earnings.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["member", "metric"]
        constraints = [
            models.UniqueConstraint(fields=["member", "metric"], name="pointbalance_member_metric"),
            models.CheckConstraint(condition=Q(balance__gte=0), name="pointbalance_balance_gte_0"),
            models.CheckConstraint(condition=Q(pending__gte=0), name="pointbalance_pending_gte_0"),
            models.CheckConstraint(condition=Q(debt__gte=0), name="pointbalance_debt_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}/{self.metric_id}: {self.balance}"
