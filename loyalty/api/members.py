"""Members, balances, ledger, adjustments and tiers (API.md: Members and points)."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty import selectors, services
from loyalty.models import LedgerEntry, Member, Metric, Tier, TierMembership

from .answers import ModelOut
from .base import has_perms, member_or_404, read_write
from .filters import IsoDateTimeFilter
from .member_lists import MemberListView
from .views import ServiceAction, validated

MAX_ADJUSTMENT = services.MAX_POINTS_PER_ENTRY


class MemberOut(ModelOut):
    class Meta:
        model = Member
        fields = [
            "external_id",
            "email",
            "name",
            "phone",
            "status",
            "tier",
            "enrolled_at",
            "segments",
            "marketing_opt_in",
        ]


class MemberCreateIn(serializers.Serializer):
    external_id = serializers.CharField(max_length=64)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    tier = serializers.SlugRelatedField(slug_field="code", queryset=Tier.objects.all(), required=False)
    marketing_opt_in = serializers.BooleanField(required=False, default=True)


class MemberPatchIn(serializers.Serializer):
    email = serializers.EmailField(required=False, allow_blank=True)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=Member.Status.choices, required=False)
    marketing_opt_in = serializers.BooleanField(
        required=False, help_text="false: no code distributions or expiry reminders (logged as skipped)."
    )
    reason = serializers.CharField(max_length=255, required=False, default="Changed via the API")


class MemberFilter(django_filters.FilterSet):
    external_id = django_filters.CharFilter()
    email = django_filters.CharFilter(field_name="email", lookup_expr="iexact")
    status = django_filters.ChoiceFilter(choices=Member.Status.choices)
    tier = django_filters.CharFilter(field_name="tier__code")
    search = django_filters.CharFilter(
        method="filter_search", label="Part of the name or email, the phone's digits, or the external id (any case)"
    )

    class Meta:
        model = Member
        fields = ["external_id", "email", "status", "tier"]

    def filter_search(self, queryset, name, value):
        return selectors.search_members(queryset, value[:200])


class MemberList(ServiceAction, generics.ListAPIView, request=MemberCreateIn, responses={201: MemberOut}):
    """GET: members (filters: external_id, email, status, tier, search). POST: enrol a member."""

    serializer_class = MemberOut
    filterset_class = MemberFilter
    permission_classes = [read_write(read=["loyalty.view_member"], write=["loyalty.add_member"])]

    def get_queryset(self):
        return Member.objects.select_related("tier").prefetch_related("segments").order_by("-id")

    def perform(self, target, actor, data):
        return services.enroll_member(actor=actor, reason="Enrolled via the API", **data)


class MemberDetail(APIView):
    permission_classes = [read_write(read=["loyalty.view_member"], write=["loyalty.change_member"])]

    @extend_schema(responses=MemberOut)
    def get(self, request, external_id):
        return Response(MemberOut(member_or_404(external_id)).data)

    @extend_schema(request=MemberPatchIn, responses=MemberOut)
    def patch(self, request, external_id):
        member = member_or_404(external_id)
        fields = validated(MemberPatchIn, request, partial=True)
        reason = fields.pop("reason", "Changed via the API")
        member = services.update_member(member=member, actor=request.user, reason=reason, **fields)
        return Response(MemberOut(member).data)


class ExpiringOut(serializers.Serializer):
    expires_at = serializers.DateTimeField()
    amount = serializers.IntegerField()


class BalanceOut(serializers.Serializer):
    metric = serializers.CharField()
    balance = serializers.IntegerField()
    pending = serializers.IntegerField()
    debt = serializers.IntegerField()
    expiring = ExpiringOut(many=True)


class MemberBalances(APIView):
    permission_classes = [has_perms("loyalty.view_member", "loyalty.view_pointbalance")]

    @extend_schema(responses=BalanceOut(many=True))
    def get(self, request, external_id):
        rows = selectors.member_balances(member_or_404(external_id))
        return Response(BalanceOut(rows, many=True).data)


class LedgerEntryOut(ModelOut):
    source = serializers.SerializerMethodField()
    reverses = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = LedgerEntry
        fields = [
            "id",
            "kind",
            "metric",
            "amount",
            "created_at",
            "effective_at",
            "expires_at",
            "reason",
            "source",
            "reverses",
            "breakdown",
        ]

    def get_source(self, obj) -> dict:
        return {"type": obj.source_type or None, "id": obj.source_id or None}


class LedgerFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=LedgerEntry.Kind.choices)
    metric = django_filters.CharFilter(field_name="metric__code")
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = LedgerEntry
        fields = ["kind", "metric"]


class MemberLedger(MemberListView):
    serializer_class = LedgerEntryOut
    filterset_class = LedgerFilter
    permission_classes = [has_perms("loyalty.view_member", "loyalty.view_ledgerentry")]

    def member_rows(self, member):
        return LedgerEntry.objects.filter(member=member).select_related("metric").order_by("-created_at", "-id")


class AdjustmentIn(serializers.Serializer):
    metric = serializers.SlugRelatedField(slug_field="code", queryset=Metric.objects.all())
    amount = serializers.IntegerField(min_value=-MAX_ADJUSTMENT, max_value=MAX_ADJUSTMENT)
    reason = serializers.CharField(max_length=500)

    def validate_amount(self, value):
        if value == 0:
            raise serializers.ValidationError("Must not be zero.")
        return value


class _MemberAction(ServiceAction):
    """POST /members/{external_id}/<action>: 404 for an unknown member before the body is read."""

    def target(self, external_id: str) -> Member:
        return member_or_404(external_id)


class MemberAdjustments(_MemberAction, request=AdjustmentIn, responses={201: LedgerEntryOut}):
    """A support adjustment: positive credits, negative debits (never below zero)."""

    permission_classes = [has_perms("loyalty.view_member", "loyalty.adjust_points")]

    def perform(self, member, actor, data):
        return services.adjust_points(member=member, actor=actor, **data)


class TierChangeIn(serializers.Serializer):
    tier = serializers.SlugRelatedField(slug_field="code", queryset=Tier.objects.all())
    reason = serializers.CharField(max_length=255)


class TierMembershipOut(ModelOut):
    class Meta:
        model = TierMembership
        fields = ["tier", "valid_from", "valid_to", "cause", "reason", "changed_by"]


class MemberTierChange(_MemberAction, request=TierChangeIn, responses={201: TierMembershipOut}):
    """A manual tier change by support, effective now (never backdated)."""

    permission_classes = [has_perms("loyalty.view_member", "loyalty.change_member_tier")]

    def perform(self, member, actor, data):
        return services.change_tier(member=member, actor=actor, **data)


class MemberTierHistory(MemberListView):
    serializer_class = TierMembershipOut
    permission_classes = [has_perms("loyalty.view_member", "loyalty.view_tiermembership")]

    def member_rows(self, member):
        return (
            TierMembership.objects.filter(member=member)
            .select_related("tier", "changed_by")
            .order_by("-valid_from", "-id")
        )
