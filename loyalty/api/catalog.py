"""Program configuration: metrics and tiers (API.md: Program configuration)."""

from __future__ import annotations

from rest_framework import generics, serializers

from loyalty.models import Metric, Tier
from loyalty.services.catalog import create_config_object

from .base import read_write
from .views import ServiceAction


class MetricSerializer(serializers.ModelSerializer):
    expiry_days = serializers.IntegerField(min_value=1, max_value=36500, allow_null=True, required=False)
    pending_days = serializers.IntegerField(min_value=0, max_value=365, required=False)

    class Meta:
        model = Metric
        fields = ["code", "name", "expiry_days", "pending_days"]
        extra_kwargs = {"code": {"validators": []}}


class TierSerializer(serializers.ModelSerializer):
    rank = serializers.IntegerField(min_value=0, max_value=1000)
    spend_threshold = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False)
    purchase_threshold = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)

    class Meta:
        model = Tier
        fields = ["code", "name", "rank", "spend_threshold", "purchase_threshold"]
        extra_kwargs = {"code": {"validators": []}, "rank": {"validators": []}}


class _ConfigList(ServiceAction, generics.ListAPIView):
    """List, or create one configuration object (history records who created it)."""

    def perform(self, target, actor, data):
        return create_config_object(obj=self.get_queryset().model(**data), actor=actor)


class MetricList(_ConfigList, request=MetricSerializer, responses={201: MetricSerializer}):
    serializer_class = MetricSerializer
    queryset = Metric.objects.order_by("code")
    permission_classes = [read_write(read=["loyalty.view_metric"], write=["loyalty.add_metric"])]


class TierList(_ConfigList, request=TierSerializer, responses={201: TierSerializer}):
    serializer_class = TierSerializer
    queryset = Tier.objects.order_by("rank")
    permission_classes = [read_write(read=["loyalty.view_tier"], write=["loyalty.add_tier"])]
