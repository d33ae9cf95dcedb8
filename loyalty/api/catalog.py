"""Program configuration: metrics and tiers (API.md: Program configuration)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from loyalty.models import Metric, Tier
from loyalty.services.catalog import create_config_object

from .base import ReadWritePerms, idempotent


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


class _ConfigList(generics.ListAPIView):
    """List, or create one configuration object (history records who created it)."""

    permission_classes = [ReadWritePerms]

    def create_object(self, request):
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        obj = create_config_object(obj=self.get_queryset().model(**data.validated_data), actor=request.user)
        return Response(self.get_serializer(obj).data, status=status.HTTP_201_CREATED)


class MetricList(_ConfigList):
    serializer_class = MetricSerializer
    queryset = Metric.objects.order_by("code")
    read_perms = ["loyalty.view_metric"]
    write_perms = ["loyalty.add_metric"]

    @extend_schema(request=MetricSerializer, responses={201: MetricSerializer})
    @idempotent
    def post(self, request):
        return self.create_object(request)


class TierList(_ConfigList):
    serializer_class = TierSerializer
    queryset = Tier.objects.order_by("rank")
    read_perms = ["loyalty.view_tier"]
    write_perms = ["loyalty.add_tier"]

    @extend_schema(request=TierSerializer, responses={201: TierSerializer})
    @idempotent
    def post(self, request):
        return self.create_object(request)
