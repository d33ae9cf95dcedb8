"""GET /reports/summary/ (API.md: Reports): the dashboard's figures as JSON.

The response serializers describe the shape for the schema; per-metric figures are maps keyed
by the metric's code, because points of different metrics are never added together.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.kernel.api import has_perms

from . import report
from .registry import registered_daily, report_queues

REPORT_READERS = has_perms("loyalty.view_reports")


class _Liability(serializers.Serializer):
    balance = serializers.IntegerField()
    pending = serializers.IntegerField()
    debt = serializers.IntegerField()


class _Breakage(serializers.Serializer):
    issued = serializers.IntegerField()
    expired = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)


class _Redemptions(serializers.Serializer):
    count = serializers.IntegerField()
    points = serializers.DictField(child=serializers.IntegerField(), help_text="Points spent, per metric.")
    by_tier = serializers.DictField(child=serializers.IntegerField(), help_text="Tier code when redeeming.")
    by_segment = serializers.DictField(child=serializers.IntegerField())


class _Awards(serializers.Serializer):
    count = serializers.IntegerField()


class _Rollbacks(serializers.Serializer):
    count = serializers.IntegerField()
    points = serializers.DictField(child=serializers.IntegerField(), help_text="Points given back, per metric.")
    by_reason = serializers.DictField(child=serializers.IntegerField())
    by_staff = serializers.DictField(child=serializers.IntegerField(), help_text="By the requester's username.")


class _Queue(serializers.Serializer):
    count = serializers.IntegerField()
    oldest_at = serializers.DateTimeField(allow_null=True)


class _Queues(serializers.Serializer):
    # One entry per queue the apps register for the report.
    def get_fields(self):
        return {q.key: _Queue() for q in report_queues()}


class _Campaign(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    codes = serializers.IntegerField()
    used = serializers.IntegerField()
    redemption_rate = serializers.FloatField()
    redemptions = serializers.IntegerField()
    median_hours_to_redeem = serializers.FloatField(allow_null=True)
    discount_total = serializers.DecimalField(max_digits=16, decimal_places=2)
    currency = serializers.CharField()


class _Average(serializers.Serializer):
    orders = serializers.IntegerField()
    average = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)


class _OrderValue(serializers.Serializer):
    currency = serializers.CharField()
    with_codes = _Average()
    without_codes = _Average()


class _Anomaly(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    kind_display = serializers.CharField()
    subject_type = serializers.CharField()
    subject = serializers.CharField()
    count = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class _Day(serializers.Serializer):
    # The date, then one count per daily series the apps register.
    def get_fields(self):
        return {"date": serializers.DateField(), **{s.key: serializers.IntegerField() for s in registered_daily()}}


class SummaryOut(serializers.Serializer):
    from_ = serializers.DateField()
    to = serializers.DateField()
    liability = serializers.DictField(child=_Liability(), help_text="Per metric.")
    expiring_30_days = serializers.DictField(child=serializers.IntegerField(), help_text="Per metric.")
    breakage = serializers.DictField(child=_Breakage(), help_text="Per metric: expired ÷ issued in the range.")
    redemptions = _Redemptions()
    awards = _Awards()
    rollbacks = _Rollbacks()
    rollback_rate = serializers.FloatField()
    queues = _Queues()
    campaigns = _Campaign(many=True)
    order_value = _OrderValue()
    anomalies = _Anomaly(many=True)
    daily = _Day(many=True)
    generated_at = serializers.DateTimeField()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # "from" is a Python keyword
        return fields


class ReportSummary(APIView):
    """The dashboard's figures for a date range (default: the last 30 days); cached up to 5 minutes."""

    permission_classes = [REPORT_READERS]

    @extend_schema(
        parameters=[
            OpenApiParameter("from", str, description="First day, YYYY-MM-DD (program time zone)."),
            OpenApiParameter("to", str, description="Last day, inclusive, YYYY-MM-DD."),
        ],
        responses={200: SummaryOut},
    )
    def get(self, request):
        period = report.parse_period(request.query_params.get("from"), request.query_params.get("to"))
        data = report.summary(period)
        return Response(SummaryOut(data).data)
