"""Redemptions and awards (API.md: Rewards, redemptions, awards, rollbacks).

One view per operation; every state change goes through ``redemptions.services`` (which check the
permission, the transition table and four-eyes again) and every POST honours ``Idempotency-Key``.
"""

from __future__ import annotations

import django_filters
from django.shortcuts import get_object_or_404
from rest_framework import generics, serializers

from loyalty.kernel.api import ChoiceStringField, IsoDateTimeFilter, ModelOut, ServiceAction, has_perms, read_write
from loyalty.models import Member, Reward
from redemptions import services
from redemptions.models import Redemption

MAX_TRACKING_REF = 100


def redemption_queryset():
    return Redemption.objects.select_related("member", "reward", "metric", "issued_code", "created_by", "decided_by")


def redemption_or_404(pk: int) -> Redemption:
    return get_object_or_404(redemption_queryset(), pk=pk)


class RedemptionOut(ModelOut):
    kind = serializers.CharField(read_only=True, help_text="redemption | award")
    status = serializers.CharField(read_only=True, help_text="pending | processing | completed | canceled | errored")
    issued_code = serializers.SerializerMethodField()

    class Meta:
        model = Redemption
        fields = [
            "id",
            "kind",
            "member",
            "reward",
            "quantity",
            "status",
            "approval_status",
            "fulfillment_status",
            "award_status",
            "points_spent",
            "points_returned",
            "metric",
            "issued_code",
            "tracking_ref",
            "expires_at",
            "channel",
            "reason",
            "created_by",
            "decided_by",
            "decision_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_issued_code(self, obj) -> str | None:
        return obj.issued_code.code if obj.issued_code_id else None


class RedeemIn(serializers.Serializer):
    member = serializers.SlugRelatedField(slug_field="external_id", queryset=Member.objects.all())
    # The metric comes with the reward: the service reads it for the balance lock and the answer.
    reward = serializers.SlugRelatedField(slug_field="external_id", queryset=Reward.objects.select_related("metric"))
    quantity = serializers.IntegerField(min_value=1, max_value=services.MAX_QUANTITY, default=1)


class AwardIn(RedeemIn):
    reason = serializers.CharField(max_length=255)


class RedemptionFilter(django_filters.FilterSet):
    member = django_filters.CharFilter(field_name="member__external_id", label="Member external_id")
    reward = django_filters.CharFilter(field_name="reward__external_id", label="Reward external_id")
    kind = django_filters.ChoiceFilter(choices=Redemption.Kind.choices)
    status = django_filters.ChoiceFilter(choices=Redemption.Status.choices)
    award_status = django_filters.ChoiceFilter(choices=Redemption.AwardStatus.choices)
    approval_status = django_filters.ChoiceFilter(choices=Redemption.ApprovalStatus.choices)
    fulfillment_status = django_filters.ChoiceFilter(choices=Redemption.Fulfillment.choices)
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Redemption
        fields = ["member", "reward", "kind", "status", "award_status", "approval_status", "fulfillment_status"]


class RedemptionList(ServiceAction, generics.ListAPIView, request=RedeemIn, responses={201: RedemptionOut}):
    """GET: redemptions and awards of every status. POST: spend points on a reward."""

    serializer_class = RedemptionOut
    filterset_class = RedemptionFilter
    permission_classes = [read_write(read=["redemptions.view_redemption"], write=["redemptions.add_redemption"])]

    def get_queryset(self):
        return redemption_queryset().order_by("-created_at", "-id")

    def perform(self, target, actor, data):
        # The service's own object (member, reward, metric, code and creator attached): no re-read.
        return services.redeem_reward(actor=actor, channel=Redemption.Channel.API, **data)


class AwardCreate(ServiceAction, request=AwardIn, responses={201: RedemptionOut}):
    """A free reward, with a reason."""

    permission_classes = [has_perms("redemptions.award_reward")]

    def perform(self, target, actor, data):
        return services.award_reward(actor=actor, channel=Redemption.Channel.API, **data)


class RedemptionDetail(generics.RetrieveAPIView):
    serializer_class = RedemptionOut
    permission_classes = [has_perms("redemptions.view_redemption")]

    def get_queryset(self):
        return redemption_queryset()


# --- state changes ---------------------------------------------------------------------------


class ApproveIn(serializers.Serializer):
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class ReasonIn(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


class StatusIn(serializers.Serializer):
    status = ChoiceStringField(choices=Redemption.Status.choices)
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class AwardStatusIn(serializers.Serializer):
    award_status = serializers.ChoiceField(choices=Redemption.AwardStatus.choices)
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class FulfillmentIn(serializers.Serializer):
    fulfillment_status = serializers.ChoiceField(choices=Redemption.Fulfillment.choices)
    tracking_ref = serializers.CharField(max_length=MAX_TRACKING_REF, required=False, allow_blank=True, default="")
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class _RedemptionAction(ServiceAction, responses=RedemptionOut):
    """POST /redemptions/{id}/<action>: validate the body, call one service, answer the redemption."""

    queryset = Redemption.objects.all()

    def target(self, pk: int) -> Redemption:
        return redemption_or_404(pk)

    def present(self, redemption: Redemption) -> dict:
        return RedemptionOut(redemption_or_404(redemption.pk)).data


class RedemptionApprove(_RedemptionAction, request=ApproveIn):
    """Approve a submitted redemption or award (never one you created)."""

    permission_classes = [has_perms("redemptions.approve_redemption")]

    def perform(self, redemption, actor, data):
        return services.approve_redemption(redemption=redemption, actor=actor, reason=data["reason"])


class RedemptionReject(_RedemptionAction, request=ReasonIn):
    """Reject: points and stock go back; the member may not redeem that reward again."""

    permission_classes = [has_perms("redemptions.approve_redemption")]

    def perform(self, redemption, actor, data):
        return services.reject_redemption(redemption=redemption, actor=actor, reason=data["reason"])


class RedemptionReturn(_RedemptionAction, request=ReasonIn):
    """Return: points and stock go back; the member may redeem the reward again."""

    permission_classes = [has_perms("redemptions.approve_redemption")]

    def perform(self, redemption, actor, data):
        return services.return_redemption(redemption=redemption, actor=actor, reason=data["reason"])


class RedemptionStatus(_RedemptionAction, request=StatusIn):
    """Move the processing status along Redemption.STATUS_TRANSITIONS (409 invalid_transition otherwise).

    ``canceled`` is a full rollback by another name: the rollback policy applies with the same codes
    (409 code_already_used, invalid_transition, rollback_pending; 422 rollback_window_closed), and
    422 rollback_approval_required where it would need a second person (request a rollback).
    Nothing moves while approval or a rollback is pending."""

    permission_classes = [has_perms("redemptions.change_redemption")]

    def perform(self, redemption, actor, data):
        return services.change_status(redemption=redemption, actor=actor, status=data["status"], reason=data["reason"])


class RedemptionAwardStatus(_RedemptionAction, request=AwardStatusIn):
    """Awards only: move award_status along Redemption.AWARD_TRANSITIONS; ``canceled`` as for /status."""

    permission_classes = [has_perms("redemptions.change_redemption")]

    def perform(self, redemption, actor, data):
        return services.change_award_status(
            redemption=redemption, actor=actor, award_status=data["award_status"], reason=data["reason"]
        )


class RedemptionFulfillment(_RedemptionAction, request=FulfillmentIn):
    """Move fulfillment_status along Redemption.FULFILLMENT_TRANSITIONS, optionally with a tracking ref."""

    permission_classes = [has_perms("redemptions.change_fulfillment")]

    def perform(self, redemption, actor, data):
        return services.change_fulfillment(
            redemption=redemption,
            actor=actor,
            fulfillment_status=data["fulfillment_status"],
            tracking_ref=data["tracking_ref"],
            reason=data["reason"],
        )
