"""The rewards catalogue (API.md: Rewards). Served here because a discount_code reward names the
campaign whose codes it issues, and only this app may know both."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.kernel import InvalidInput
from loyalty.kernel.api import ServiceAction, read_write, validated
from loyalty.models import Metric, Reward, Tier
from promotions.models import Campaign
from redemptions.models import RewardCodePool
from redemptions.services import save_reward


class RewardSerializer(serializers.ModelSerializer):
    metric = serializers.SlugRelatedField(slug_field="code", queryset=Metric.objects.all())
    points = serializers.IntegerField(min_value=0, max_value=1_000_000_000)
    stock = serializers.IntegerField(min_value=0, max_value=1_000_000_000, allow_null=True, required=False)
    eligible_tiers = serializers.SlugRelatedField(
        slug_field="code", queryset=Tier.objects.all(), many=True, required=False
    )
    campaign = serializers.PrimaryKeyRelatedField(
        queryset=Campaign.objects.all(),
        allow_null=True,
        required=False,
        help_text="discount_code rewards: the campaign whose codes it issues.",
    )

    class Meta:
        model = Reward
        fields = [
            "external_id",
            "name",
            "description",
            "type",
            "metric",
            "points",
            "stock",
            "requires_approval",
            "requires_fulfillment",
            "active",
            "active_from",
            "active_until",
            "valid_days",
            "eligible_tiers",
            "campaign",
        ]
        extra_kwargs = {"external_id": {"validators": []}}

    def to_representation(self, instance):
        data = super().to_representation(instance)
        pool = RewardCodePool.objects.filter(reward=instance).values_list("campaign_id", flat=True).first()
        data["campaign"] = pool
        return data

    def validate(self, attrs):
        start = attrs.get("active_from", getattr(self.instance, "active_from", None))
        end = attrs.get("active_until", getattr(self.instance, "active_until", None))
        if start and end and end <= start:
            raise serializers.ValidationError({"active_until": ["Must be after active_from."]})
        kind = attrs.get("type", getattr(self.instance, "type", None))
        if kind == Reward.Type.DISCOUNT_CODE and "campaign" in attrs and attrs["campaign"] is None:
            raise serializers.ValidationError({"campaign": ["A discount_code reward needs a campaign."]})
        return attrs


class RewardList(ServiceAction, generics.ListAPIView, request=RewardSerializer, responses={201: RewardSerializer}):
    serializer_class = RewardSerializer
    permission_classes = [read_write(read=["loyalty.view_reward"], write=["loyalty.add_reward"])]
    filterset_fields = ["type", "active"]

    def get_queryset(self):
        return Reward.objects.select_related("metric").prefetch_related("eligible_tiers").order_by("name", "id")

    def perform(self, target, actor, data):
        if data.get("type") == Reward.Type.DISCOUNT_CODE and not data.get("campaign"):
            raise InvalidInput("A discount_code reward needs a campaign.", errors={"campaign": ["Required."]})
        return save_reward(reward=Reward(), data=data, actor=actor, reason="Created via the API")


class RewardDetail(APIView):
    permission_classes = [read_write(read=["loyalty.view_reward"], write=["loyalty.change_reward"])]

    def _get(self, external_id):
        from django.shortcuts import get_object_or_404

        return get_object_or_404(Reward, external_id=external_id)

    @extend_schema(responses=RewardSerializer)
    def get(self, request, external_id):
        return Response(RewardSerializer(self._get(external_id)).data)

    @extend_schema(request=RewardSerializer, responses=RewardSerializer)
    def patch(self, request, external_id):
        reward = self._get(external_id)
        values = validated(RewardSerializer, request, instance=reward, partial=True)
        if values.pop("external_id", reward.external_id) != reward.external_id:
            raise InvalidInput("A reward's external_id never changes.", errors={"external_id": ["Read-only."]})
        reward = save_reward(reward=reward, data=values, actor=request.user, reason="Changed via the API")
        return Response(RewardSerializer(reward).data)
