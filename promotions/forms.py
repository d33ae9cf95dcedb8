"""Forms of the promotions admin. They only collect input: every write goes through ``services``."""

from __future__ import annotations

import uuid

from django import forms
from django.conf import settings

from loyalty.models import Segment

from . import codegen
from .models import Campaign
from .services import CAMPAIGN_FIELDS

DATETIME_WIDGET = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class ChannelsField(forms.CharField):
    """A comma-separated list of channel names, stored as a JSON list."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value):
        value = super().to_python(value)
        if isinstance(value, list):
            return value
        return [part.strip() for part in (value or "").split(",") if part.strip()]


class CampaignAdminForm(forms.ModelForm):
    """The campaign form. The model's own validation (field types, CHECK constraints) runs here;
    the service re-checks everything when saving, and its refusals are shown as messages."""

    channels = ChannelsField(
        required=False,
        help_text="Comma-separated, e.g. online, pos. Empty means every channel.",
    )
    change_reason = forms.CharField(
        required=False, max_length=100, help_text="Why you change this campaign (kept in its history)."
    )

    class Meta:
        model = Campaign
        # What the service may set, and the eligibility relations it sets beside them. The page's
        # layout is CampaignAdmin.get_fieldsets.
        fields = [*sorted(CAMPAIGN_FIELDS), "eligible_tiers", "eligible_segments"]

    def clean_code_pattern(self):
        pattern = self.cleaned_data.get("code_pattern") or ""
        if pattern:
            try:
                codegen.Pattern.build(pattern=pattern)
            except codegen.PatternError as exc:
                raise forms.ValidationError(str(exc)) from None
        return pattern

    def clean(self):
        data = super().clean()
        kind, value = data.get("kind"), data.get("value")
        if value is not None and kind == Campaign.Kind.PERCENT_DISCOUNT and value > 100:
            self.add_error("value", "A percentage is at most 100.")
        if value is not None and kind == Campaign.Kind.BONUS_POINTS and value != value.to_integral_value():
            self.add_error("value", "Bonus points are whole numbers.")
        return data


class GenerateCodesForm(forms.Form):
    """The "Generate codes" form of a campaign page (→ ``services.create_code_batch``)."""

    count = forms.IntegerField(
        required=False, min_value=1, help_text="How many codes. Leave empty when distributing to a segment."
    )
    pattern = forms.CharField(
        required=False,
        max_length=codegen.MAX_CODE_LENGTH,
        help_text="# a digit, ? a letter, * any character, e.g. SUMMER-####-????. "
        "Empty: the campaign's default pattern, or prefix + length below.",
    )
    prefix = forms.CharField(required=False, max_length=32)
    suffix = forms.CharField(required=False, max_length=32)
    length = forms.IntegerField(
        required=False, min_value=1, max_value=codegen.MAX_CODE_LENGTH, help_text="Random characters (no pattern)."
    )
    charset = forms.CharField(
        required=False, max_length=64, help_text="For * and length; empty means letters and digits without look-alikes."
    )
    max_uses = forms.IntegerField(min_value=1, max_value=1_000_000, initial=1, help_text="1 = single use.")
    release_at = forms.DateTimeField(
        required=False, widget=DATETIME_WIDGET, help_text="Codes are valid only from then (scheduled release)."
    )
    valid_until = forms.DateTimeField(required=False, widget=DATETIME_WIDGET)
    segment = forms.ModelChoiceField(
        queryset=Segment.objects.order_by("name"),
        required=False,
        help_text="Personalised: one code for each member of this segment.",
    )
    email_members = forms.BooleanField(required=False, label="Email each member their code")
    token = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, campaign: Campaign | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["count"].max_value = settings.CODE_BATCH_MAX_COUNT
        self.fields["count"].widget.attrs["max"] = settings.CODE_BATCH_MAX_COUNT
        if not self.is_bound:
            self.initial.setdefault("token", uuid.uuid4().hex)
        if campaign is not None and campaign.code_pattern:
            self.fields["pattern"].widget.attrs["placeholder"] = campaign.code_pattern

    def clean(self):
        data = super().clean()
        if not data.get("segment") and not data.get("count") and "count" not in self.errors:
            self.add_error("count", "Give a count, or choose a segment.")
        if data.get("email_members") and not data.get("segment"):
            self.add_error("email_members", "Emails go to the members of a segment; choose one.")
        if data.get("pattern") and data.get("length"):
            self.add_error("length", "Give a pattern or a length, not both.")
        return data

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        kwargs = {
            "count": data.get("count"),
            "pattern": data.get("pattern") or "",
            "prefix": data.get("prefix") or "",
            "suffix": data.get("suffix") or "",
            "length": data.get("length"),
            "charset": data.get("charset") or "",
            "max_uses": data["max_uses"],
            "release_at": data.get("release_at"),
            "valid_until": data.get("valid_until"),
            "segment": data.get("segment"),
            "email_members": bool(data.get("email_members")),
        }
        if kwargs["segment"] is not None:
            kwargs["count"] = None
        return kwargs


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=255, widget=forms.TextInput(attrs={"size": 60}), help_text="Kept on the record."
    )


class CodeLookupForm(forms.Form):
    code = forms.CharField(max_length=codegen.MAX_CODE_LENGTH * 2, label="Code", strip=True)

    def clean_code(self):
        code = codegen.normalize(self.cleaned_data["code"])
        if not code:
            raise forms.ValidationError("Type a code.")
        return code
