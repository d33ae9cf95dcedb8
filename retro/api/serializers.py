"""Retro claim input and output shapes."""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from loyalty.kernel.api import IsoDateTimeFilter, ModelOut
from loyalty.models import Member, Transaction

from ..models import RetroClaim


class RetroClaimIn(serializers.Serializer):
    transaction = serializers.SlugRelatedField(
        slug_field="external_id", queryset=Transaction.objects.all(), help_text="The bill number (external_id)."
    )
    member = serializers.SlugRelatedField(
        slug_field="external_id", queryset=Member.objects.all(), help_text="The member's external_id."
    )
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class RejectIn(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


class PreviewOut(serializers.Serializer):
    points = serializers.IntegerField()
    breakdown = serializers.JSONField()


class RetroClaimOut(ModelOut):
    occurred_at = serializers.DateTimeField(source="transaction.occurred_at", read_only=True)
    amount = serializers.DecimalField(source="transaction.amount", max_digits=14, decimal_places=2, read_only=True)
    # Plain strings in the schema: "status"/"channel" enums of other apps would collide in the naming.
    status = serializers.CharField(read_only=True, help_text="submitted | approved | processed | rejected | failed")
    channel = serializers.CharField(read_only=True, help_text="admin | api")
    preview = serializers.SerializerMethodField()
    ledger_entry = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = RetroClaim
        fields = [
            "id",
            "transaction",
            "occurred_at",
            "amount",
            "member",
            "status",
            "channel",
            "note",
            "requested_by",
            "preview",
            "approved_by",
            "approved_at",
            "auto_approved",
            "rejected_by",
            "rejection_reason",
            "processed_at",
            "points_awarded",
            "breakdown",
            "ledger_entry",
            "error",
            "attempts",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(PreviewOut)
    def get_preview(self, obj: RetroClaim) -> dict[str, Any]:
        return {"points": obj.preview_points, "breakdown": obj.preview}


class RetroClaimFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RetroClaim.Status.choices)
    member = django_filters.CharFilter(field_name="member__external_id", label="Member external_id")
    transaction = django_filters.CharFilter(field_name="transaction__external_id", label="Bill number")
    channel = django_filters.ChoiceFilter(choices=RetroClaim.Channel.choices)
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = RetroClaim
        fields = ["status", "channel"]
