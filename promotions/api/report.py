"""What promotions adds to GET /reports/summary/ (API.md: Reports): campaigns, order value and
open anomaly signals. Registered with the section in promotions/insight.py."""

from __future__ import annotations

from rest_framework import serializers


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


class ReportFigures(serializers.Serializer):
    campaigns = _Campaign(many=True)
    order_value = _OrderValue()
    anomalies = _Anomaly(many=True)
