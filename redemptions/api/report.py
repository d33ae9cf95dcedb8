"""What redemptions adds to GET /reports/summary/ (API.md: Reports): redemptions, awards and
rollbacks in the range. Registered with the section in redemptions/insight.py."""

from __future__ import annotations

from rest_framework import serializers


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


class ReportFigures(serializers.Serializer):
    redemptions = _Redemptions()
    awards = _Awards()
    rollbacks = _Rollbacks()
    rollback_rate = serializers.FloatField()
