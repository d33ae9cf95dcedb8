"""Retro claims (API.md: Transactions (purchases) and retro). Services check permissions and four-eyes."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.kernel.api import ReadWritePerms, has_perms, idempotent

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


class RetroClaimList(generics.ListAPIView):
    """GET: claims, newest first (filters: status, member, transaction, channel, created_after/before).
    POST: file a claim for a past non-loyalty purchase; it starts ``submitted`` with a preview."""

    serializer_class = RetroClaimOut
    filterset_class = RetroClaimFilter
    permission_classes = [ReadWritePerms]
    read_perms = ["retro.view_retroclaim"]
    write_perms = ["retro.view_retroclaim", "retro.add_retroclaim"]

    def get_queryset(self):
        return _claims().order_by("-created_at", "-id")

    @extend_schema(request=RetroClaimIn, responses={201: RetroClaimOut})
    @idempotent
    def post(self, request):
        data = RetroClaimIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        claim = services.submit_retro_claim(
            transaction_=fields["transaction"],
            member=fields["member"],
            note=fields["note"],
            actor=request.user,
            channel=RetroClaim.Channel.API,
        )
        return Response(_claim_out(claim), status=status.HTTP_201_CREATED)


class RetroClaimDetail(APIView):
    permission_classes = [has_perms("retro.view_retroclaim")]

    @extend_schema(responses=RetroClaimOut)
    def get(self, request, pk: int):
        return Response(RetroClaimOut(get_object_or_404(_claims(), pk=pk)).data)


class RetroClaimApprove(APIView):
    """Approve (never the requester): processing is queued on commit; the claim then goes processed or failed."""

    permission_classes = [has_perms("retro.view_retroclaim", "retro.approve_retroclaim")]

    @extend_schema(request=None, responses=RetroClaimOut)
    @idempotent
    def post(self, request, pk: int):
        claim = services.approve_retro_claim(claim=_claim_or_404(pk), actor=request.user)
        return Response(_claim_out(claim))


class RetroClaimReject(APIView):
    permission_classes = [has_perms("retro.view_retroclaim", "retro.approve_retroclaim")]

    @extend_schema(request=RejectIn, responses=RetroClaimOut)
    @idempotent
    def post(self, request, pk: int):
        claim = _claim_or_404(pk)
        data = RejectIn(data=request.data)
        data.is_valid(raise_exception=True)
        claim = services.reject_retro_claim(claim=claim, actor=request.user, reason=data.validated_data["reason"])
        return Response(_claim_out(claim))
