"""The rewards catalogue."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from loyalty.kernel.models import Timestamped, choices

from .members import Metric, Tier


class Reward(Timestamped):
    Type = choices("Type", "physical_product discount_code badge experience")

    external_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200, db_index=True)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=24, choices=Type.choices, db_index=True)
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="rewards")
    points = models.PositiveIntegerField(help_text="Cost in the metric's points.")
    stock = models.PositiveIntegerField(null=True, blank=True, help_text="Empty means unlimited.")
    requires_approval = models.BooleanField(default=False)
    requires_fulfillment = models.BooleanField(default=False)
    active = models.BooleanField(default=True, db_index=True)
    active_from = models.DateTimeField(null=True, blank=True)
    active_until = models.DateTimeField(null=True, blank=True)
    valid_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days an award or an issued code stays usable; empty means no limit."
    )
    eligible_tiers = models.ManyToManyField(Tier, blank=True, related_name="+", help_text="Empty means every tier.")
    history = HistoricalRecords(m2m_fields=[eligible_tiers])

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(type__in=["physical_product", "discount_code", "badge", "experience"]),
                name="reward_type_valid",
            ),
            models.CheckConstraint(
                condition=Q(active_from__isnull=True)
                | Q(active_until__isnull=True)
                | Q(active_until__gt=models.F("active_from")),
                name="reward_active_window",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def is_available(self, at=None) -> bool:
        at = at or timezone.now()
        return (
            self.active
            and (self.active_from is None or self.active_from <= at)
            and (self.active_until is None or at < self.active_until)
        )
