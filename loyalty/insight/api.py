"""GET /reports/summary/ (API.md: Reports): the dashboard's figures as JSON.

The response serializers describe the shape for the schema; each app declares the keys its report
section adds (its ``api/report.py``). Per-metric figures are maps keyed by the metric's code,
because points of different metrics are never added together.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.kernel.api import has_perms

from . import report
from .registry import registered_daily, registered_figures, report_queues

REPORT_READERS = has_perms("loyalty.view_reports")


class _Liability(serializers.Serializer):
    balance = serializers.IntegerField()
    pending = serializers.IntegerField()
    debt = serializers.IntegerField()


class _Breakage(serializers.Serializer):
    issued = serializers.IntegerField()
    expired = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)


class _Queue(serializers.Serializer):
    count = serializers.IntegerField()
    oldest_at = serializers.DateTimeField(allow_null=True)


class _Queues(serializers.Serializer):
    # One entry per queue the apps register for the report.
    def get_fields(self):
        return {q.key: _Queue() for q in report_queues()}


class _Day(serializers.Serializer):
    # The date, then one count per daily series the apps register.
    def get_fields(self):
        return {"date": serializers.DateField(), **{s.key: serializers.IntegerField() for s in registered_daily()}}


class PointsFigures(serializers.Serializer):
    liability = serializers.DictField(child=_Liability(), help_text="Per metric.")
    expiring_30_days = serializers.DictField(child=serializers.IntegerField(), help_text="Per metric.")
    breakage = serializers.DictField(child=_Breakage(), help_text="Per metric: expired ÷ issued in the range.")


class QueueFigures(serializers.Serializer):
    queues = _Queues()


class SummaryOut(serializers.Serializer):
    from_ = serializers.DateField()
    to = serializers.DateField()
    daily = _Day(many=True)
    generated_at = serializers.DateTimeField()

    def get_fields(self):
        """The range's end, every registered section's keys in order (each app declares its own),
        the per-day series, and last the range's start (``from`` is a Python keyword)."""
        declared = super().get_fields()
        start = declared.pop("from_")
        fields = {"to": declared.pop("to")}
        for section in registered_figures():
            fields.update(section.serializer().get_fields())
        return {**fields, **declared, "from": start}


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
