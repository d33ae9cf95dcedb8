"""Rollbacks (API.md: POST /redemptions/{id}/rollback, GET /rollbacks/, approve, reject).

The policy (window, statuses, code use, pending rollbacks, partial, approval reasons, cumulative
threshold, per-member limit, four-eyes) lives in the gate, ``redemptions.services.refunds``; these
views only validate input and present the result.
"""

from __future__ import annotations

import django_filters
from django.shortcuts import get_object_or_404
from rest_framework import generics, serializers

from loyalty.kernel.api import ChoiceStringField, ModelOut, ServiceAction, has_perms
from redemptions import services
from redemptions.models import Redemption, Rollback

from .redemptions import redemption_or_404

MAX_POINTS = 1_000_000_000_000


def rollback_queryset():
    return Rollback.objects.select_related("member", "requested_by", "approved_by", "rejected_by").prefetch_related(
        "ledger_entries"
    )


def rollback_or_404(pk: int) -> Rollback:
    return get_object_or_404(rollback_queryset(), pk=pk)


class RollbackOut(ModelOut):
    status = serializers.CharField(read_only=True, help_text="pending_approval | executed | rejected")
    reason = serializers.CharField(read_only=True, help_text="customer_request | technical_error | fraud | other")
    via = serializers.CharField(
        read_only=True, help_text="rollback (requested as one) | cancel (by canceling the redemption or award)"
    )
    ledger_entries = serializers.SerializerMethodField(help_text="Ids of the ledger entries that returned the points.")

    class Meta:
        model = Rollback
        fields = [
            "id",
            "redemption",
            "member",
            "status",
            "points_requested",
            "points_returned",
            "full",
            "reason",
            "via",
            "note",
            "code_voided",
            "stock_restored",
            "notified",
            "notified_at",
            "approval_required_because",
            "requested_by",
            "approved_by",
            "rejected_by",
            "decision_note",
            "created_at",
            "executed_at",
            "ledger_entries",
        ]
        read_only_fields = fields

    def get_ledger_entries(self, obj) -> list[int]:
        return sorted(e.pk for e in obj.ledger_entries.all())


class RollbackIn(serializers.Serializer):
    reason = ChoiceStringField(choices=Rollback.Reason.choices)
    points = serializers.IntegerField(
        min_value=1, max_value=MAX_POINTS, required=False, allow_null=True, help_text="Omit for a full rollback."
    )
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class RollbackApproveIn(serializers.Serializer):
    note = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class RollbackRejectIn(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


class RedemptionRollback(ServiceAction, request=RollbackIn, responses={201: RollbackOut}):
    """Undo a redemption (fully, or ``points`` of it): executed now, or pending_approval where the
    policy needs a second person."""

    queryset = Redemption.objects.all()
    permission_classes = [has_perms("redemptions.add_rollback")]

    def target(self, pk: int) -> Redemption:
        return redemption_or_404(pk)

    def perform(self, redemption, actor, data):
        return services.rollback_redemption(
            redemption=redemption, actor=actor, reason=data["reason"], points=data.get("points"), note=data["note"]
        )

    def present(self, rollback: Rollback) -> dict:
        return RollbackOut(rollback_or_404(rollback.pk)).data


class RollbackFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Rollback.Status.choices)
    reason = django_filters.ChoiceFilter(choices=Rollback.Reason.choices)
    via = django_filters.ChoiceFilter(choices=Rollback.Via.choices)
    member = django_filters.CharFilter(field_name="member__external_id", label="Member external_id")
    redemption = django_filters.NumberFilter(field_name="redemption_id", label="Redemption id")

    class Meta:
        model = Rollback
        fields = ["status", "reason", "via", "member", "redemption"]


class RollbackList(generics.ListAPIView):
    serializer_class = RollbackOut
    filterset_class = RollbackFilter
    permission_classes = [has_perms("redemptions.view_rollback")]

    def get_queryset(self):
        return rollback_queryset().order_by("-created_at", "-id")


class RollbackDetail(generics.RetrieveAPIView):
    serializer_class = RollbackOut
    permission_classes = [has_perms("redemptions.view_rollback")]

    def get_queryset(self):
        return rollback_queryset()


class _RollbackDecision(ServiceAction, responses=RollbackOut):
    # POST /rollbacks/{id}/approve|reject: the second person's decision on a pending rollback.
    # (A comment, not a docstring: the schema would describe RollbackReject with it.)

    queryset = Rollback.objects.all()
    permission_classes = [has_perms("redemptions.approve_rollback")]

    def target(self, pk: int) -> Rollback:
        return rollback_or_404(pk)

    def present(self, rollback: Rollback) -> dict:
        return RollbackOut(rollback_or_404(rollback.pk)).data


class RollbackApprove(_RollbackDecision, request=RollbackApproveIn):
    """Execute a pending rollback (a second person: never the requester)."""

    def perform(self, rollback, actor, data):
        return services.approve_rollback(rollback=rollback, actor=actor, note=data["note"])


class RollbackReject(_RollbackDecision, request=RollbackRejectIn):
    def perform(self, rollback, actor, data):
        return services.reject_rollback(rollback=rollback, actor=actor, reason=data["reason"])
