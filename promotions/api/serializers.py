"""Input and output serializers for campaigns, code batches, codes and code use (API.md: Campaigns and codes).

Input serializers check shape and ranges before any service call; the services check the business
rules again (and are the only code that writes).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from loyalty.kernel.api import ChoiceStringField, ModelOut
from loyalty.models import Member, Metric, Segment, Tier
from promotions import codegen, services
from promotions.models import Campaign, Code, CodeBatch, CodeRedemption
from promotions.selectors import campaign_stats

MAX_INT = 2**31 - 1


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers, booleans and other non-strings instead of converting them."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class BoundedListField(serializers.ListField):
    """A ListField that checks its length before validating every item (a huge list fails fast)."""

    def to_internal_value(self, data):
        if isinstance(data, list) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "maxLength": 64})
class MemberRefField(serializers.Field):
    """A member addressed by external_id in a body field; unknown is a 400 on that field."""

    default_error_messages = {
        "not_a_string": "Must be a member's external_id (a string).",
        "unknown": "Unknown member.",
    }

    def to_internal_value(self, data) -> Member:
        if not isinstance(data, str) or not 0 < len(data) <= 64:
            self.fail("not_a_string")
        member = Member.objects.select_related("tier").filter(external_id=data).first()
        if member is None:
            self.fail("unknown")
        return member

    def to_representation(self, value) -> str:
        return value.external_id if isinstance(value, Member) else str(value)


# --- campaigns -----------------------------------------------------------------------------------


class EligibilitySerializer(serializers.Serializer):
    """Who and what a campaign's codes apply to; empty lists / null mean no restriction."""

    tiers = serializers.SlugRelatedField(
        slug_field="code", queryset=Tier.objects.all(), many=True, required=False, source="eligible_tiers"
    )
    segments = serializers.SlugRelatedField(
        slug_field="code", queryset=Segment.objects.all(), many=True, required=False, source="eligible_segments"
    )
    min_order_amount = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal(0),
        max_value=services.MAX_ORDER_AMOUNT,
        allow_null=True,
        required=False,
    )
    channels = BoundedListField(child=StrictCharField(max_length=32), max_length=50, required=False)


class CampaignIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    kind = ChoiceStringField(choices=Campaign.Kind.choices)
    value = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal("0.01"), help_text="Percent, amount, or points."
    )
    metric = serializers.SlugRelatedField(
        slug_field="code", queryset=Metric.objects.all(), required=False, allow_null=True
    )
    status = ChoiceStringField(
        choices=Campaign.Status.choices, required=False, help_text="Moves along the transition table."
    )
    starts_at = serializers.DateTimeField(required=False, allow_null=True)
    ends_at = serializers.DateTimeField(required=False, allow_null=True)
    max_redemptions = serializers.IntegerField(min_value=0, max_value=MAX_INT, required=False, allow_null=True)
    max_discount_total = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=Decimal(0), required=False, allow_null=True
    )
    per_member_limit = serializers.IntegerField(min_value=1, max_value=MAX_INT, required=False, allow_null=True)
    stacking = serializers.ChoiceField(choices=Campaign.Stacking.choices, required=False)
    stack_group = serializers.CharField(max_length=64, required=False, allow_blank=True)
    max_codes_per_order = serializers.IntegerField(
        min_value=1, max_value=services.MAX_CODES_PER_REQUEST, required=False
    )
    code_pattern = serializers.CharField(max_length=64, required=False, allow_blank=True)
    eligibility = EligibilitySerializer(required=False)


class CampaignPatchIn(CampaignIn):
    reason = serializers.CharField(max_length=255, required=False, help_text="Recorded in the history.")


class CampaignEligibilityOut(serializers.Serializer):
    tiers = serializers.SerializerMethodField(help_text="Tier codes; empty means every tier.")
    segments = serializers.SerializerMethodField(help_text="Segment codes; empty means everyone.")
    min_order_amount = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True, read_only=True)
    channels = serializers.ListField(child=serializers.CharField(), read_only=True)

    def get_tiers(self, obj) -> list[str]:
        return sorted(t.code for t in obj.eligible_tiers.all())

    def get_segments(self, obj) -> list[str]:
        return sorted(s.code for s in obj.eligible_segments.all())


class CampaignOut(ModelOut):
    kind = ChoiceStringField(choices=Campaign.Kind.choices, read_only=True)
    status = ChoiceStringField(choices=Campaign.Status.choices, read_only=True)
    eligibility = CampaignEligibilityOut(source="*", read_only=True)

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "value",
            "metric",
            "status",
            "starts_at",
            "ends_at",
            "max_redemptions",
            "max_discount_total",
            "per_member_limit",
            "stacking",
            "stack_group",
            "max_codes_per_order",
            "eligibility",
            "code_pattern",
            "redemptions_count",
            "discount_total",
            "bonus_points_total",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class CodeCountsOut(serializers.Serializer):
    total = serializers.IntegerField()
    used = serializers.IntegerField()
    void = serializers.IntegerField()
    expired = serializers.IntegerField()


class ValidationCountsOut(serializers.Serializer):
    attempts = serializers.IntegerField()
    failed = serializers.IntegerField()


class CampaignStatsOut(serializers.Serializer):
    codes = CodeCountsOut()
    validations = ValidationCountsOut()
    redemptions = serializers.IntegerField()
    discount_total = serializers.DecimalField(max_digits=16, decimal_places=2)
    bonus_points = serializers.IntegerField()
    redemption_rate = serializers.FloatField()


class CampaignDetailOut(CampaignOut):
    stats = serializers.SerializerMethodField()

    class Meta(CampaignOut.Meta):
        fields = [*CampaignOut.Meta.fields, "stats"]
        read_only_fields = fields

    @extend_schema_field(CampaignStatsOut)
    def get_stats(self, obj) -> dict:
        return CampaignStatsOut(campaign_stats(obj)).data


# --- code batches ---------------------------------------------------------------------------------


class CodeBatchIn(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, required=False, help_text="Omit when giving a segment.")
    pattern = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    prefix = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    suffix = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    length = serializers.IntegerField(min_value=1, max_value=codegen.MAX_CODE_LENGTH, required=False)
    charset = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    max_uses = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False, default=1)
    release_at = serializers.DateTimeField(required=False, allow_null=True)
    valid_until = serializers.DateTimeField(required=False, allow_null=True)
    segment = serializers.SlugRelatedField(
        slug_field="code",
        queryset=Segment.objects.all(),
        required=False,
        allow_null=True,
        help_text="Personalised distribution: one code per member of this segment (instead of count).",
    )
    email_members = serializers.BooleanField(required=False, default=False)

    def validate_count(self, value: int) -> int:
        limit = settings.CODE_BATCH_MAX_COUNT
        if value > limit:
            raise serializers.ValidationError(f"Ensure this value is less than or equal to {limit}.")
        return value

    def validate(self, attrs):
        segment = attrs.get("segment")
        if segment is None and "count" not in attrs:
            raise serializers.ValidationError({"count": ["Give a count, or a segment to distribute to."]})
        if segment is not None and "count" in attrs:
            raise serializers.ValidationError({"count": ["Give either a count or a segment, not both."]})
        if attrs.get("email_members") and segment is None:
            raise serializers.ValidationError({"email_members": ["Only with a segment."]})
        release_at, valid_until = attrs.get("release_at"), attrs.get("valid_until")
        if release_at and valid_until and valid_until <= release_at:
            raise serializers.ValidationError({"valid_until": ["Must be after release_at."]})
        return attrs


class CodeBatchOut(ModelOut):
    status = ChoiceStringField(choices=CodeBatch.Status.choices, read_only=True)
    progress = serializers.SerializerMethodField(help_text="Share generated, 0 to 1.")

    class Meta:
        model = CodeBatch
        fields = [
            "id",
            "campaign",
            "status",
            "count",
            "generated",
            "progress",
            "pattern",
            "charset",
            "max_uses",
            "release_at",
            "valid_until",
            "segment",
            "email_members",
            "error",
            "created_by",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_progress(self, obj) -> float:
        return round(obj.generated / obj.count, 4) if obj.count else 1.0


# --- codes -------------------------------------------------------------------------------------------


class NamedCodeIn(serializers.Serializer):
    code = StrictCharField(max_length=codegen.MAX_CODE_LENGTH, help_text="e.g. WELCOME10")
    max_uses = serializers.IntegerField(min_value=1, max_value=100_000_000, required=False, default=1)
    assigned_member = MemberRefField(required=False, allow_null=True, help_text="The member's external_id.")
    valid_from = serializers.DateTimeField(required=False, allow_null=True)
    valid_until = serializers.DateTimeField(required=False, allow_null=True)

    def validate(self, attrs):
        valid_from, valid_until = attrs.get("valid_from"), attrs.get("valid_until")
        if valid_from and valid_until and valid_until <= valid_from:
            raise serializers.ValidationError({"valid_until": ["Must be after valid_from."]})
        return attrs


class CodeOut(ModelOut):
    status = ChoiceStringField(choices=Code.Status.choices, read_only=True)

    class Meta:
        model = Code
        fields = [
            "id",
            "code",
            "normalized",
            "campaign",
            "batch",
            "status",
            "uses",
            "max_uses",
            "assigned_member",
            "valid_from",
            "valid_until",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TimelineEntryOut(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField(help_text="generated, released, created, validated, redeemed, rolled_back, ...")
    result = serializers.CharField(allow_null=True, help_text="valid, or the reason a validation was refused.")
    who = serializers.CharField(allow_null=True, help_text="The client (API user) or admin user.")
    ip = serializers.CharField(allow_null=True)
    member = serializers.CharField(allow_null=True)
    order_id = serializers.CharField(allow_null=True)
    detail = serializers.JSONField()


class CodeDetailOut(CodeOut):
    campaign_name = serializers.CharField(source="campaign.name", read_only=True)
    campaign_status = serializers.CharField(source="campaign.status", read_only=True)
    timeline = TimelineEntryOut(many=True, read_only=True)

    class Meta(CodeOut.Meta):
        fields = [*CodeOut.Meta.fields, "campaign_name", "campaign_status", "timeline"]
        read_only_fields = fields


# --- validation and redemption --------------------------------------------------------------------


class OrderIn(serializers.Serializer):
    id = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    amount = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=Decimal(0),
        max_value=services.MAX_ORDER_AMOUNT,
        required=False,
        default=Decimal(0),
    )
    channel = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


class CodeRequestIn(serializers.Serializer):
    codes = BoundedListField(
        child=StrictCharField(max_length=codegen.MAX_CODE_LENGTH, trim_whitespace=False),
        allow_empty=False,
        max_length=services.MAX_CODES_PER_REQUEST,
        help_text="Codes as the customer typed them (case and separators do not matter).",
    )
    member = MemberRefField(required=False, allow_null=True, help_text="The member's external_id.")
    order = OrderIn(required=False)


class CodeResultOut(serializers.Serializer):
    code = serializers.CharField(help_text="The normalised code.")
    valid = serializers.BooleanField()
    reason = serializers.CharField(allow_null=True)
    discount = serializers.DecimalField(max_digits=14, decimal_places=2)
    bonus_points = serializers.IntegerField()


class ValidationOut(serializers.Serializer):
    codes = CodeResultOut(many=True)
    applicable = serializers.ListField(child=serializers.CharField())
    discount_total = serializers.DecimalField(max_digits=16, decimal_places=2)
    bonus_points = serializers.IntegerField()


class CodeRedemptionOut(ModelOut):
    status = ChoiceStringField(choices=CodeRedemption.Status.choices, read_only=True)
    code = serializers.CharField(source="code.normalized", read_only=True)

    class Meta:
        model = CodeRedemption
        fields = [
            "id",
            "code",
            "campaign",
            "member",
            "order_id",
            "discount",
            "bonus_points",
            "status",
            "created_at",
            "rolled_back_at",
            "rolled_back_by",
            "rollback_reason",
        ]
        read_only_fields = fields


class RedeemOut(serializers.Serializer):
    code_redemptions = CodeRedemptionOut(many=True)
    discount_total = serializers.DecimalField(max_digits=16, decimal_places=2)
    bonus_points = serializers.IntegerField()


class CodeRollbackIn(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


class QrPngQuery(serializers.Serializer):
    scale = serializers.IntegerField(min_value=1, max_value=40, required=False, default=6)
