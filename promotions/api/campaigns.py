"""Campaigns, code batches and named codes (API.md: Campaigns and codes).

Permissions: campaigns need promotions.view_campaign (GET), add_campaign (POST), change_campaign
(PATCH); code batches need promotions.generate_codes to create and view_codebatch to read; a named
code needs promotions.generate_codes. The services check them again.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.kernel.api import ServiceAction, has_perms, read_write, validated
from promotions import services
from promotions.models import Campaign, CodeBatch

from .common import BodyLimitMixin
from .serializers import (
    CampaignDetailOut,
    CampaignIn,
    CampaignOut,
    CampaignPatchIn,
    CodeBatchIn,
    CodeBatchOut,
    CodeOut,
    NamedCodeIn,
)


def _campaigns():
    return Campaign.objects.select_related("metric").prefetch_related("eligible_tiers", "eligible_segments")


def campaign_or_404(pk: int) -> Campaign:
    return get_object_or_404(_campaigns(), pk=pk)


def _service_fields(validated: dict[str, Any]) -> dict[str, Any]:
    """Flatten the nested ``eligibility`` object into the service's keyword arguments."""
    fields = dict(validated)
    eligibility = fields.pop("eligibility", None) or {}
    for key in ("eligible_tiers", "eligible_segments", "min_order_amount", "channels"):
        if key in eligibility:
            fields[key] = eligibility[key]
    return fields


class CampaignFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Campaign.Status.choices)
    kind = django_filters.ChoiceFilter(choices=Campaign.Kind.choices)
    stack_group = django_filters.CharFilter()

    class Meta:
        model = Campaign
        fields = ["status", "kind", "stack_group"]


class CampaignList(
    BodyLimitMixin, ServiceAction, generics.ListAPIView, request=CampaignIn, responses={201: CampaignDetailOut}
):
    """GET: campaigns, newest first (filters: status, kind, stack_group). POST: create a campaign.

    A new campaign starts as ``draft``; give ``status`` to move it on at once (e.g. ``active``).
    """

    serializer_class = CampaignOut
    filterset_class = CampaignFilter
    permission_classes = [read_write(read=["promotions.view_campaign"], write=["promotions.add_campaign"])]

    def get_queryset(self):
        return _campaigns().order_by("-id")

    def perform(self, target, actor, data):
        fields = _service_fields(data)
        first_status = fields.pop("status", Campaign.Status.DRAFT)
        return services.create_campaign(actor=actor, status=first_status, status_reason="Created via the API", **fields)

    def present(self, campaign: Campaign) -> dict:
        return CampaignDetailOut(campaign_or_404(campaign.pk)).data


class CampaignDetail(BodyLimitMixin, APIView):
    """GET: a campaign with its counters and stats. PATCH: change fields and/or ``status``.

    A status change follows the transition table (draft → active|ended, active ⇄ paused, → ended);
    anything else is 409 ``invalid_transition``. Setting the status it already has changes nothing.
    """

    permission_classes = [read_write(read=["promotions.view_campaign"], write=["promotions.change_campaign"])]

    @extend_schema(responses=CampaignDetailOut)
    def get(self, request, pk: int):
        return Response(CampaignDetailOut(campaign_or_404(pk)).data)

    @extend_schema(request=CampaignPatchIn, responses=CampaignDetailOut)
    def patch(self, request, pk: int):
        campaign = campaign_or_404(pk)
        fields = _service_fields(validated(CampaignPatchIn, request, partial=True))
        reason = fields.pop("reason", "Changed via the API")
        if fields.get("status") == campaign.status:
            fields.pop("status")
        if set(fields) == {"status"}:
            services.change_campaign_status(
                campaign=campaign, status=fields["status"], actor=request.user, reason=reason
            )
        elif fields:
            services.update_campaign(campaign=campaign, actor=request.user, reason=reason, **fields)
        return Response(CampaignDetailOut(campaign_or_404(pk)).data)


class CampaignCodeBatches(
    BodyLimitMixin, ServiceAction, generics.ListAPIView, request=CodeBatchIn, responses={202: CodeBatchOut}
):
    """GET: the campaign's code batches. POST: queue the generation of a batch (202).

    Generation runs as chunked Celery work; poll ``GET /code-batches/{id}/`` for ``status``
    (pending|running|completed|failed) and ``generated``. Give ``count`` (with an optional
    ``pattern``, or ``prefix``/``suffix``/``length``/``charset``; default: the campaign's
    ``code_pattern``), or a ``segment`` to assign one code per member of it (``email_members``).
    """

    serializer_class = CodeBatchOut
    permission_classes = [read_write(read=["promotions.view_codebatch"], write=["promotions.generate_codes"])]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return CodeBatch.objects.none()
        campaign = get_object_or_404(Campaign, pk=self.kwargs["pk"])
        return CodeBatch.objects.filter(campaign=campaign).select_related("segment", "created_by").order_by("-id")

    def target(self, pk: int) -> Campaign:
        return get_object_or_404(Campaign, pk=pk)

    def perform(self, campaign, actor, data):
        batch = services.create_code_batch(campaign=campaign, actor=actor, **data)
        batch.refresh_from_db()  # with eager Celery the batch may already be complete
        return batch


class CodeBatchDetail(APIView):
    """A code batch and its generation progress."""

    permission_classes = [has_perms("promotions.view_codebatch")]

    @extend_schema(responses=CodeBatchOut)
    def get(self, request, pk: int):
        batch = get_object_or_404(CodeBatch.objects.select_related("segment", "created_by"), pk=pk)
        return Response(CodeBatchOut(batch).data)


class CampaignNamedCodes(BodyLimitMixin, ServiceAction, request=NamedCodeIn, responses={201: CodeOut}):
    """Create one named code (e.g. WELCOME10), typically the public multi-use kind."""

    permission_classes = [has_perms("promotions.generate_codes")]

    def target(self, pk: int) -> Campaign:
        return get_object_or_404(Campaign, pk=pk)

    def perform(self, campaign, actor, data):
        return services.create_named_code(campaign=campaign, actor=actor, **data)
