"""Program settings, rule sets and purchases (API.md: Program configuration; Transactions)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import django_filters
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty import services
from loyalty.models import Member, ProgramSettings, Rule, RuleSet, Transaction, TransactionReturn

from .answers import ModelOut
from .base import has_perms, read_write
from .filters import IsoDateTimeFilter
from .views import ServiceAction, validated

MAX_AMOUNT = Decimal("9999999999.99")
MAX_RULES = 100


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with a time zone offset; a naive timestamp is ambiguous and refused."""

    default_error_messages = {"naive": "Give a time zone offset (e.g. 2023-05-20T14:00:00+02:00)."}

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:  # well-formed but impossible, e.g. minute 99
                self.fail("invalid", format="YYYY-MM-DDThh:mm[:ss[.uuuuuu]]+HH:MM")
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive")
        return super().to_internal_value(value)


def _amount(**kwargs: Any) -> serializers.DecimalField:
    """A money amount above zero, to the cent (as the models store it: 12 digits, 2 decimals)."""
    return serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0.01"), **kwargs)


# --- program settings ------------------------------------------------------------------------

ROLLBACK_REASONS = ["customer_request", "technical_error", "fraud", "other"]
ROLLBACK_STATUSES = ["pending", "processing", "completed", "errored"]
ROLLBACK_FULFILLMENT_STATUSES = [
    "none",
    "confirmed_paid",
    "shipped",
    "delivered",
    "returned_to_sender",
    "lost_in_transit",
]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class ProgramSettingsSerializer(serializers.ModelSerializer):
    qualification_period_months = serializers.ChoiceField(choices=[1, 3, 6, 12], required=False)
    retro_window_days = serializers.IntegerField(min_value=1, max_value=3650, required=False)
    retro_max_claims_per_30_days = serializers.IntegerField(min_value=0, max_value=10_000, required=False)
    retro_enrolment_buffer_hours = serializers.IntegerField(min_value=0, max_value=87_600, required=False)
    retro_auto_approve_below_points = serializers.IntegerField(
        min_value=1, max_value=1_000_000_000, allow_null=True, required=False
    )
    rollback_window_days = serializers.IntegerField(min_value=0, max_value=3650, required=False)
    rollback_approval_above_points = serializers.IntegerField(
        min_value=0, max_value=1_000_000_000, allow_null=True, required=False
    )
    rollback_approval_reasons = serializers.ListField(
        child=serializers.ChoiceField(choices=ROLLBACK_REASONS), max_length=len(ROLLBACK_REASONS) * 2, required=False
    )
    rollback_max_per_member_30_days = serializers.IntegerField(min_value=0, max_value=10_000, required=False)
    rollback_expired_lot_grace_days = serializers.IntegerField(min_value=0, max_value=3650, required=False)
    rollback_statuses = serializers.ListField(
        child=serializers.ChoiceField(choices=ROLLBACK_STATUSES), max_length=len(ROLLBACK_STATUSES) * 2, required=False
    )
    rollback_fulfillment_statuses = serializers.ListField(
        child=serializers.ChoiceField(choices=ROLLBACK_FULFILLMENT_STATUSES),
        max_length=len(ROLLBACK_FULFILLMENT_STATUSES) * 2,
        required=False,
    )

    class Meta:
        model = ProgramSettings
        fields = [
            "currency",
            "qualification_period_months",
            *ProgramSettings.RETRO_FIELDS,
            *ProgramSettings.ROLLBACK_FIELDS,
            "expiry_reminder_days",
            "updated_at",
        ]
        read_only_fields = ["currency", "updated_at"]

    def validate_rollback_approval_reasons(self, value):
        return _unique(value)

    def validate_rollback_statuses(self, value):
        return _unique(value)

    def validate_rollback_fulfillment_statuses(self, value):
        return _unique(value)


class ProgramSettingsPatchIn(ProgramSettingsSerializer):
    reason = serializers.CharField(max_length=100, required=False, default="Changed via the API")

    class Meta(ProgramSettingsSerializer.Meta):
        fields = [*ProgramSettingsSerializer.Meta.fields, "reason"]


class ProgramView(APIView):
    """GET: the program settings (retro and rollback policy). PATCH: change some of them (history-tracked)."""

    permission_classes = [read_write(read=["loyalty.view_programsettings"], write=["loyalty.change_programsettings"])]

    @extend_schema(responses=ProgramSettingsSerializer)
    def get(self, request):
        return Response(ProgramSettingsSerializer(ProgramSettings.load()).data)

    @extend_schema(request=ProgramSettingsPatchIn, responses=ProgramSettingsSerializer)
    def patch(self, request):
        fields = validated(ProgramSettingsPatchIn, request, partial=True)
        reason = fields.pop("reason", "Changed via the API")
        program = ProgramSettings.load()
        if fields:
            program = services.update_program_settings(actor=request.user, reason=reason, **fields)
        return Response(ProgramSettingsSerializer(program).data)


# --- rule sets -------------------------------------------------------------------------------


class ConditionsSerializer(serializers.Serializer):
    min_amount = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal("0"), allow_null=True, required=False
    )
    channels = serializers.ListField(
        child=serializers.CharField(max_length=32), max_length=100, required=False, default=list
    )
    stores = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=1000, required=False, default=list
    )
    tiers = serializers.ListField(
        child=serializers.CharField(max_length=32), max_length=100, required=False, default=list
    )


class RuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200)
    metric = serializers.CharField(max_length=32, help_text="Metric code, e.g. points.")
    action = serializers.ChoiceField(choices=Rule.Action.choices)
    points = serializers.IntegerField(
        min_value=1, max_value=1_000_000_000, allow_null=True, required=False, help_text="fixed, per_amount."
    )
    unit_amount = _amount(allow_null=True, required=False, help_text="per_amount: points per this much spent.")
    percent_by_tier = serializers.DictField(
        child=serializers.DecimalField(
            max_digits=7, decimal_places=3, min_value=Decimal("0"), max_value=1000, coerce_to_string=False
        ),
        required=False,
        help_text='percent_of_amount: {"GOLD": 20, "SILVER": 15, "BRONZE": 10}.',
    )
    conditions = ConditionsSerializer(required=False)

    def validate(self, attrs):
        # A PATCH makes the whole request partial, nested rules included, but ``rules`` replaces
        # the list: each rule must still be complete.
        missing = [name for name in ("name", "metric", "action") if name not in attrs]
        if missing:
            raise serializers.ValidationError({name: ["This field is required."] for name in missing})
        action = attrs["action"]
        if action in ("fixed", "per_amount") and not attrs.get("points"):
            raise serializers.ValidationError({"points": [f"Required for {action}."]})
        if action == "per_amount" and not attrs.get("unit_amount"):
            raise serializers.ValidationError({"unit_amount": ["Required for per_amount."]})
        if action == "percent_of_amount" and not attrs.get("percent_by_tier"):
            raise serializers.ValidationError({"percent_by_tier": ["Give a percent per tier code."]})
        return attrs

    def to_representation(self, rule: Rule) -> dict[str, Any]:
        return {
            "id": rule.pk,
            "name": rule.name,
            "metric": rule.metric.code,
            "action": rule.action,
            "points": rule.points,
            "unit_amount": None if rule.unit_amount is None else str(rule.unit_amount),
            "percent_by_tier": rule.percent_by_tier or {},
            "conditions": {
                "min_amount": None if rule.min_amount is None else str(rule.min_amount),
                "channels": list(rule.channels or []),
                "stores": list(rule.stores or []),
                "tiers": list(rule.tiers or []),
            },
        }


def _rules_for_service(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The validated rules as the plain data the rule-set services take (they validate again)."""
    out = []
    for position, rule in enumerate(rules):
        item: dict[str, Any] = {
            "name": rule["name"],
            "metric": rule["metric"],
            "action": rule["action"],
            "position": position,
        }
        if rule.get("points") is not None:
            item["points"] = rule["points"]
        if rule.get("unit_amount") is not None:
            item["unit_amount"] = rule["unit_amount"]
        if rule.get("percent_by_tier"):
            item["percent_by_tier"] = dict(rule["percent_by_tier"])
        conditions = rule.get("conditions") or {}
        item["conditions"] = {
            "min_amount": conditions.get("min_amount"),
            "channels": list(conditions.get("channels") or []),
            "stores": list(conditions.get("stores") or []),
            "tiers": list(conditions.get("tiers") or []),
        }
        out.append(item)
    return out


class RuleSetOut(ModelOut):
    rules = serializers.SerializerMethodField()
    previous = serializers.PrimaryKeyRelatedField(read_only=True)
    status = serializers.CharField(read_only=True, help_text="draft | published | retired")

    class Meta:
        model = RuleSet
        fields = [
            "id",
            "name",
            "version",
            "description",
            "valid_from",
            "valid_to",
            "status",
            "previous",
            "published_at",
            "published_by",
            "created_by",
            "created_at",
            "updated_at",
            "rules",
        ]

    @extend_schema_field(RuleSerializer(many=True))
    def get_rules(self, obj: RuleSet) -> list[dict[str, Any]]:
        rules = sorted(obj.rules.all(), key=lambda r: (r.position, r.pk))
        return [RuleSerializer().to_representation(r) for r in rules]


class RuleSetIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    valid_from = AwareDateTimeField()
    valid_to = AwareDateTimeField(required=False, allow_null=True, default=None, help_text="Exclusive; null = open.")
    rules = RuleSerializer(many=True, required=False, default=list, max_length=MAX_RULES)

    def validate(self, attrs):
        start, end = attrs.get("valid_from"), attrs.get("valid_to")
        if start is not None and end is not None and end <= start:
            raise serializers.ValidationError({"valid_to": ["Must be after valid_from."]})
        return attrs


class RuleSetPatchIn(RuleSetIn):
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    valid_to = AwareDateTimeField(required=False, allow_null=True, help_text="Exclusive; null = open.")
    rules = RuleSerializer(many=True, required=False, max_length=MAX_RULES)


class NewVersionIn(serializers.Serializer):
    valid_from = AwareDateTimeField(required=False, help_text="Start of the new version (default: now).")


class RetireIn(serializers.Serializer):
    reason = serializers.CharField(max_length=100, required=False, default="Retired via the API")


class RuleSetFilter(django_filters.FilterSet):
    name = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=RuleSet.Status.choices)
    in_force_at = IsoDateTimeFilter(method="filter_in_force_at", label="Published set in force then")

    class Meta:
        model = RuleSet
        fields = ["name", "status"]

    def filter_in_force_at(self, queryset, name, value):
        from django.db.models import Q

        return queryset.filter(
            status__in=[RuleSet.Status.PUBLISHED, RuleSet.Status.RETIRED], valid_from__lte=value
        ).filter(Q(valid_to__isnull=True) | Q(valid_to__gt=value))


def _rule_sets():
    return RuleSet.objects.select_related("published_by", "created_by").prefetch_related("rules__metric")


def _rule_set_or_404(pk: int) -> RuleSet:
    return get_object_or_404(RuleSet, pk=pk)


def _rule_set_out(rule_set: RuleSet) -> dict[str, Any]:
    return RuleSetOut(_rule_sets().get(pk=rule_set.pk)).data


class RuleSetList(ServiceAction, generics.ListAPIView, request=RuleSetIn, responses={201: RuleSetOut}):
    """GET: rule sets, newest window first (filters: name, status, in_force_at). POST: a new draft."""

    serializer_class = RuleSetOut
    filterset_class = RuleSetFilter
    permission_classes = [read_write(read=["loyalty.view_ruleset"], write=["loyalty.add_ruleset"])]

    def get_queryset(self):
        return _rule_sets().order_by("-valid_from", "-version", "-id")

    def perform(self, target, actor, data):
        rules = _rules_for_service(data.pop("rules"))
        return services.create_rule_set(actor=actor, rules=rules, **data)

    def present(self, rule_set: RuleSet) -> dict[str, Any]:
        return _rule_set_out(rule_set)


class RuleSetDetail(APIView):
    """GET: one rule set with its rules. PATCH: edit a draft (published sets are immutable: 409)."""

    permission_classes = [read_write(read=["loyalty.view_ruleset"], write=["loyalty.change_ruleset"])]

    @extend_schema(responses=RuleSetOut)
    def get(self, request, pk: int):
        return Response(RuleSetOut(get_object_or_404(_rule_sets(), pk=pk)).data)

    @extend_schema(request=RuleSetPatchIn, responses=RuleSetOut)
    def patch(self, request, pk: int):
        rule_set = _rule_set_or_404(pk)
        fields = validated(RuleSetPatchIn, request, partial=True)
        rules = fields.pop("rules", None)
        start, end = fields.get("valid_from", rule_set.valid_from), fields.get("valid_to", rule_set.valid_to)
        if end is not None and end <= start:
            raise serializers.ValidationError({"valid_to": ["Must be after valid_from."]})
        rule_set = services.update_rule_set(
            rule_set=rule_set,
            actor=request.user,
            rules=None if rules is None else _rules_for_service(rules),
            **fields,
        )
        return Response(_rule_set_out(rule_set))


class _RuleSetAction(ServiceAction):
    """POST /rule-sets/{id}/<action>: one service on the rule set, answered with its rules."""

    def target(self, pk: int) -> RuleSet:
        return _rule_set_or_404(pk)

    def present(self, rule_set: RuleSet) -> dict[str, Any]:
        return _rule_set_out(rule_set)


class RuleSetPublish(_RuleSetAction, responses=RuleSetOut):
    """Make a draft effective for its window (409 rule_set_overlap if another published set overlaps)."""

    permission_classes = [has_perms("loyalty.view_ruleset", "loyalty.publish_ruleset")]

    def perform(self, rule_set, actor, data):
        return services.publish_rule_set(rule_set=rule_set, actor=actor)


class RuleSetNewVersion(_RuleSetAction, request=NewVersionIn, responses={201: RuleSetOut}):
    """Copy a rule set into a new draft (optional valid_from, default now)."""

    permission_classes = [has_perms("loyalty.view_ruleset", "loyalty.add_ruleset")]

    def perform(self, rule_set, actor, data):
        return services.new_rule_set_version(rule_set=rule_set, actor=actor, **data)


class RuleSetRetire(_RuleSetAction, request=RetireIn, responses=RuleSetOut):
    """Stop a published set from now on; its past stays on record for retro processing."""

    permission_classes = [has_perms("loyalty.view_ruleset", "loyalty.publish_ruleset")]

    def perform(self, rule_set, actor, data):
        return services.retire_rule_set(rule_set=rule_set, actor=actor, **data)


# --- transactions ----------------------------------------------------------------------------


class TransactionIn(serializers.Serializer):
    external_id = serializers.CharField(max_length=64, help_text="Bill number (unique).")
    occurred_at = AwareDateTimeField()
    amount = _amount(max_value=MAX_AMOUNT, coerce_to_string=True)
    currency = serializers.CharField(max_length=3, min_length=3)
    channel = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    store = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    member = serializers.SlugRelatedField(
        slug_field="external_id",
        queryset=Member.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="The member's external_id; omit for a non-loyalty purchase.",
    )


class TransactionReturnOut(ModelOut):
    class Meta:
        model = TransactionReturn
        fields = [
            "id",
            "transaction",
            "amount",
            "reason",
            "points_reversed",
            "debt_created",
            "created_by",
            "created_at",
        ]


class TransactionOut(ModelOut):
    non_loyalty = serializers.SerializerMethodField()

    class Meta:
        model = Transaction
        fields = [
            "external_id",
            "occurred_at",
            "amount",
            "currency",
            "channel",
            "store",
            "member",
            "non_loyalty",
            "points_earned",
            "breakdown",
            "processed_at",
            "returned_amount",
            "created_at",
        ]

    def get_non_loyalty(self, obj: Transaction) -> bool:
        return obj.member_id is None


class TransactionDetailOut(TransactionOut):
    returns = TransactionReturnOut(many=True, read_only=True)

    class Meta(TransactionOut.Meta):
        fields = [*TransactionOut.Meta.fields, "returns"]


class TransactionFilter(django_filters.FilterSet):
    external_id = django_filters.CharFilter()
    member = django_filters.CharFilter(field_name="member__external_id", label="Member external_id")
    non_loyalty = django_filters.BooleanFilter(field_name="member", lookup_expr="isnull", label="Without a member")
    occurred_after = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    store = django_filters.CharFilter()
    channel = django_filters.CharFilter()
    amount_min = django_filters.NumberFilter(field_name="amount", lookup_expr="gte")
    amount_max = django_filters.NumberFilter(field_name="amount", lookup_expr="lte")

    class Meta:
        model = Transaction
        fields = ["external_id", "store", "channel"]


def _transaction_or_404(external_id: str) -> Transaction:
    return get_object_or_404(Transaction.objects.select_related("member"), external_id=external_id)


class TransactionList(ServiceAction, generics.ListAPIView, request=TransactionIn, responses={201: TransactionOut}):
    """GET: purchases (filters: external_id, member, non_loyalty, occurred_after/before, store, channel,
    amount_min/max). POST: record a purchase; with a member it earns by the rules and tier at occurred_at."""

    serializer_class = TransactionOut
    filterset_class = TransactionFilter
    permission_classes = [read_write(read=["loyalty.view_transaction"], write=["loyalty.add_transaction"])]

    def get_queryset(self):
        return Transaction.objects.select_related("member").order_by("-occurred_at", "-id")

    def perform(self, target, actor, data):
        return services.record_transaction(actor=actor, **data)


class TransactionDetail(APIView):
    permission_classes = [has_perms("loyalty.view_transaction")]

    @extend_schema(responses=TransactionDetailOut)
    def get(self, request, external_id: str):
        txn = get_object_or_404(
            Transaction.objects.select_related("member").prefetch_related("returns__created_by"),
            external_id=external_id,
        )
        return Response(TransactionDetailOut(txn).data)


class ReturnIn(serializers.Serializer):
    amount = _amount(
        max_value=MAX_AMOUNT,
        required=False,
        allow_null=True,
        default=None,
        help_text="Omit for a full return (of what is left).",
    )
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class TransactionReturnView(ServiceAction, request=ReturnIn, responses={201: TransactionReturnOut}):
    """Reverse, proportionally and by the original rules, the points the purchase earned."""

    permission_classes = [has_perms("loyalty.view_transaction", "loyalty.add_transactionreturn")]

    def target(self, external_id: str) -> Transaction:
        return _transaction_or_404(external_id)

    def perform(self, txn, actor, data):
        return services.return_transaction(transaction_=txn, actor=actor, **data)
