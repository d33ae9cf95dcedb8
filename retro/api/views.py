"""Retro claims (API.md: Transactions (purchases) and retro). Services check permissions and four-eyes."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.kernel.api import ServiceAction, has_perms, read_write

from .. import services
from ..models import RetroClaim
from .serializers import RejectIn, RetroClaimFilter, RetroClaimIn, RetroClaimOut


def _claims():
    return RetroClaim.objects.select_related("transaction", "member", "requested_by", "approved_by", "rejected_by")


def _claim_or_404(pk: int) -> RetroClaim:
    return get_object_or_404(RetroClaim, pk=pk)


def _claim_out(claim: RetroClaim) -> dict:
    # Re-read: processing may already have run (eager Celery on commit).
    return RetroClaimOut(_claims().get(pk=claim.pk)).data


class RetroClaimList(ServiceAction, generics.ListAPIView, request=RetroClaimIn, responses={201: RetroClaimOut}):
    """GET: claims, newest first (filters: status, member, transaction, channel, created_after/before).
    POST: file a claim for a past non-loyalty purchase; it starts ``submitted`` with a preview."""

    serializer_class = RetroClaimOut
    filterset_class = RetroClaimFilter
    permission_classes = [
        read_write(read=["retro.view_retroclaim"], write=["retro.view_retroclaim", "retro.add_retroclaim"])
    ]

    def get_queryset(self):
        return _claims().order_by("-created_at", "-id")

    def perform(self, target, actor, data):
        return services.submit_retro_claim(
            transaction_=data["transaction"],
            member=data["member"],
            note=data["note"],
            actor=actor,
            channel=RetroClaim.Channel.API,
        )

    def present(self, claim: RetroClaim) -> dict:
        return _claim_out(claim)


class RetroClaimDetail(APIView):
    permission_classes = [has_perms("retro.view_retroclaim")]

    @extend_schema(responses=RetroClaimOut)
    def get(self, request, pk: int):
        return Response(RetroClaimOut(get_object_or_404(_claims(), pk=pk)).data)


class _ClaimDecision(ServiceAction, responses=RetroClaimOut):
    # POST /retro-claims/{id}/approve|reject: the approver's decision, answered with the claim.
    # (A comment, not a docstring: the schema would describe RetroClaimReject with it.)

    permission_classes = [has_perms("retro.view_retroclaim", "retro.approve_retroclaim")]

    def target(self, pk: int) -> RetroClaim:
        return _claim_or_404(pk)

    def present(self, claim: RetroClaim) -> dict:
        return _claim_out(claim)


class RetroClaimApprove(_ClaimDecision):
    """Approve (never the requester): processing is queued on commit; the claim then goes processed or failed."""

    def perform(self, claim, actor, data):
        return services.approve_retro_claim(claim=claim, actor=actor)


class RetroClaimReject(_ClaimDecision, request=RejectIn):
    def perform(self, claim, actor, data):
        return services.reject_retro_claim(claim=claim, actor=actor, reason=data["reason"])
