"""Codes: list, lookup with timeline, validate, redeem, roll a use back, QR images.

Permissions: list, lookup, QR and validate need promotions.view_code; redeem needs
promotions.add_coderedemption; rollback needs promotions.change_coderedemption.

Validation attempts are recorded with the client (the API user's username) and the IP address
(``loyalty.network.client_ip``: REMOTE_ADDR, or X-Forwarded-For behind a TRUSTED_PROXIES proxy).
"""

from __future__ import annotations

from decimal import Decimal

import django_filters
from django import forms
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.kernel.api import ServiceAction, client_ip, has_perms, idempotent, validated
from loyalty.models import Member
from promotions import codegen, qr, services
from promotions.models import Code, CodeRedemption
from promotions.selectors import code_timeline

from .common import BodyLimitMixin
from .serializers import (
    CodeDetailOut,
    CodeOut,
    CodeRedemptionOut,
    CodeRequestIn,
    CodeRollbackIn,
    QrPngQuery,
    RedeemOut,
    ValidationOut,
)

MAX_ID = 2**63 - 1


def code_or_404(text: str) -> Code:
    """A code by its text, case- and separator-insensitively."""
    normalized = codegen.normalize(text)
    if not normalized or len(normalized) > codegen.MAX_CODE_LENGTH:
        raise Http404("No such code.")
    return get_object_or_404(
        Code.objects.select_related("campaign", "batch__created_by", "assigned_member"), normalized=normalized
    )


# --- list and lookup ------------------------------------------------------------------------------


class IdFilter(django_filters.Filter):
    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class CodeFilter(django_filters.FilterSet):
    """Every filter hits an indexed column; ``assigned_member`` is resolved to an id first (no join)."""

    campaign = IdFilter(field_name="campaign_id", label="Campaign id")
    batch = IdFilter(field_name="batch_id", label="Code batch id")
    status = django_filters.ChoiceFilter(choices=Code.Status.choices)
    assigned_member = django_filters.CharFilter(method="filter_assigned_member", label="The member's external_id")

    class Meta:
        model = Code
        fields = ["campaign", "batch", "status", "assigned_member"]

    def filter_assigned_member(self, queryset, name, value):
        member_id = Member.objects.filter(external_id=value).values_list("pk", flat=True).first()
        return queryset.filter(assigned_member_id=member_id) if member_id else queryset.none()


class CodeList(generics.ListAPIView):
    """Codes, newest first (filters: campaign, batch, status, assigned_member); paginated."""

    serializer_class = CodeOut
    filterset_class = CodeFilter
    permission_classes = [has_perms("promotions.view_code")]

    def get_queryset(self):
        return Code.objects.select_related("assigned_member").order_by("-id")


class CodeDetail(APIView):
    """A code (matched case- and separator-insensitively) with its timeline, for disputes."""

    permission_classes = [has_perms("promotions.view_code")]

    @extend_schema(responses=CodeDetailOut)
    def get(self, request, code: str):
        obj = code_or_404(code)
        obj.timeline = code_timeline(obj)
        return Response(CodeDetailOut(obj).data)


# --- validate and redeem --------------------------------------------------------------------------


def code_request(request) -> services.CodeRequest:
    """Validate the body before anything is recorded; an unknown member is a 400 on ``member``."""
    body = validated(CodeRequestIn, request)
    order = body.get("order") or {}
    return services.clean_request(
        codes=body["codes"],
        member=body.get("member"),
        order={
            "id": order.get("id", ""),
            "amount": str(order.get("amount", Decimal(0))),
            "channel": order.get("channel", ""),
        },
        client=request.user.get_username()[:150],
        ip=client_ip(request),
    )


class CodesValidate(BodyLimitMixin, APIView):
    """Which codes apply to this order, and why not the others. Changes nothing but the code timelines.

    Too many failed attempts from one client, IP or member lock it out for a while: 429
    ``too_many_attempts``.
    """

    permission_classes = [has_perms("promotions.view_code")]

    @extend_schema(request=CodeRequestIn, responses=ValidationOut)
    def post(self, request):
        evaluation = services.validate_codes(code_request(request), actor=request.user)
        body = {
            "codes": [
                {
                    "code": r.code,
                    "valid": r.valid,
                    "reason": r.reason,
                    "discount": r.discount,
                    "bonus_points": r.bonus_points,
                }
                for r in evaluation.results
            ],
            "applicable": [r.code for r in evaluation.applicable],
            "discount_total": evaluation.discount_total,
            "bonus_points": evaluation.bonus_points,
        }
        return Response(ValidationOut(body).data)


class CodesRedeem(BodyLimitMixin, APIView):
    """Redeem the whole stack atomically, or nothing: 422 ``codes_rejected`` with the per-code reasons
    in ``errors.codes``. Accepts an ``Idempotency-Key``."""

    permission_classes = [has_perms("promotions.add_coderedemption")]

    @extend_schema(request=CodeRequestIn, responses={201: RedeemOut})
    @idempotent
    def post(self, request):
        created = services.redeem_codes(code_request(request), actor=request.user)
        body = {
            "code_redemptions": created,
            "discount_total": sum((r.discount for r in created), Decimal(0)),
            "bonus_points": sum(r.bonus_points for r in created),
        }
        return Response(RedeemOut(body).data, status=status.HTTP_201_CREATED)


class CodeRedemptionRollback(BodyLimitMixin, ServiceAction, request=CodeRollbackIn, responses=CodeRedemptionOut):
    """Reverse one code use: counters go back, bonus points are taken back, the code is usable again
    where its limits allow. 409 ``invalid_transition`` if it was already rolled back."""

    permission_classes = [has_perms("promotions.change_coderedemption")]

    def target(self, pk: int) -> CodeRedemption:
        return get_object_or_404(CodeRedemption, pk=pk)

    def perform(self, use, actor, data):
        services.rollback_code_redemption(redemption=use, actor=actor, reason=data["reason"])
        return CodeRedemption.objects.select_related("code", "member", "rolled_back_by").get(pk=use.pk)


# --- QR images ------------------------------------------------------------------------------------


class JSONErrorsNegotiation(BaseContentNegotiation):
    """The image views answer images whatever the Accept header says, and errors always in JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class _QrView(APIView):
    permission_classes = [has_perms("promotions.view_code")]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONErrorsNegotiation
    media_type = ""
    extension = ""

    def render(self, request, text: str) -> bytes:
        raise NotImplementedError

    def get(self, request, code: str):
        obj = code_or_404(code)
        response = HttpResponse(self.render(request, obj.code), content_type=self.media_type)
        response["Content-Disposition"] = f'inline; filename="{obj.normalized}.{self.extension}"'
        response["Cache-Control"] = "private, max-age=3600"
        return response


@extend_schema(responses={(200, "image/svg+xml"): OpenApiTypes.BINARY})
class CodeQrSvg(_QrView):
    """The code's QR image as SVG."""

    media_type = "image/svg+xml"
    extension = "svg"

    def render(self, request, text: str) -> bytes:
        return qr.qr_svg(text)

    def get(self, request, code: str):
        response = super().get(request, code)
        # An SVG is a document: never let one run script or load anything if opened directly.
        response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
        return response


@extend_schema(parameters=[QrPngQuery], responses={(200, "image/png"): OpenApiTypes.BINARY})
class CodeQrPng(_QrView):
    """The code's QR image as PNG (``scale``: pixels per module, 1 to 40, default 6)."""

    media_type = "image/png"
    extension = "png"

    def render(self, request, text: str) -> bytes:
        query = QrPngQuery(data=request.query_params)
        if not query.is_valid():
            raise serializers.ValidationError(query.errors)
        return qr.qr_png(text, scale=query.validated_data["scale"])
