"""The one shape of a ``/members/<external_id>/...`` list: that member's rows, 404 for an unknown id."""

from __future__ import annotations

from django.db import models
from rest_framework import generics

from .base import member_or_404


class MemberListView(generics.ListAPIView):
    """Lists ``member_rows(member)``; the schema generator (no URL kwargs) gets an empty queryset."""

    def member_rows(self, member) -> models.QuerySet:
        raise NotImplementedError

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.get_serializer_class().Meta.model.objects.none()
        return self.member_rows(member_or_404(self.kwargs["external_id"]))
