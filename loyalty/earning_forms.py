"""Forms of the earning admin (rule sets, preview, returns). They validate input only; every write
goes through ``services``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone

from .models import Member, Rule, RuleSet, Tier

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip()]


class CommaListField(forms.CharField):
    """A JSON list of strings, typed as ``a, b, c``."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value) -> list[str]:
        if isinstance(value, list | tuple):
            return [str(v) for v in value]
        return _split_list(super().to_python(value))


class PercentByTierField(forms.CharField):
    """A ``{"GOLD": 20, "SILVER": 15}`` map, typed as ``GOLD=20, SILVER=15``."""

    def prepare_value(self, value):
        if isinstance(value, dict):
            return ", ".join(f"{code}={pct}" for code, pct in value.items())
        return value

    def to_python(self, value) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        result: dict[str, Any] = {}
        for part in _split_list(super().to_python(value)):
            code, sep, pct = part.replace(":", "=").partition("=")
            code = code.strip().upper()
            if not sep or not code:
                raise forms.ValidationError(f"Write each tier as CODE=percent (got {part!r}).")
            try:
                number = Decimal(pct.strip())
            except ArithmeticError:
                raise forms.ValidationError(f"{pct.strip()!r} is not a number.") from None
            if not number.is_finite() or number < 0 or number > 1000:
                raise forms.ValidationError(f"{pct.strip()}% is not plausible.")
            result[code] = int(number) if number == number.to_integral_value() else float(number)
        return result


class RuleSetAdminForm(forms.ModelForm):
    class Meta:
        model = RuleSet
        fields = ["name", "description", "valid_from", "valid_to"]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("valid_from"), cleaned.get("valid_to")
        if start and end and end <= start:
            self.add_error("valid_to", "Must be after the start (the end is exclusive).")
        return cleaned


def _condition_list(help_text: str) -> CommaListField:
    """A rule condition's optional list (channels, stores, tiers) in a small text box."""
    return CommaListField(required=False, help_text=help_text, widget=forms.TextInput(attrs={"size": 14}))


class RuleAdminForm(forms.ModelForm):
    percent_by_tier = PercentByTierField(
        required=False,
        label="Percent by tier",
        help_text="percent_of_amount: e.g. GOLD=20, SILVER=15, BRONZE=10",
        widget=forms.TextInput(attrs={"size": 28}),
    )
    channels = _condition_list("Only these (comma-separated); empty = all.")
    stores = _condition_list("Only these (comma-separated); empty = all.")
    tiers = _condition_list("Only these tier codes; empty = all.")

    class Meta:
        model = Rule
        fields = [
            "position",
            "name",
            "metric",
            "action",
            "points",
            "unit_amount",
            "percent_by_tier",
            "min_amount",
            "channels",
            "stores",
            "tiers",
        ]
        widgets = {"position": forms.NumberInput(attrs={"class": "rule-position"})}  # sized in the page's CSS

    def clean(self):
        cleaned = super().clean()
        action = cleaned.get("action")
        if action in (Rule.Action.FIXED, Rule.Action.PER_AMOUNT) and not cleaned.get("points"):
            self.add_error("points", "Required for this action (a whole number above zero).")
        if action == Rule.Action.PER_AMOUNT and not (cleaned.get("unit_amount") or 0) > 0:
            self.add_error("unit_amount", "Required for points per unit of amount (above zero).")
        if action == Rule.Action.PERCENT_OF_AMOUNT:
            by_tier = cleaned.get("percent_by_tier") or {}
            if not by_tier:
                self.add_error("percent_by_tier", "Give a percent per tier code.")
            else:
                known = set(Tier.objects.values_list("code", flat=True))
                unknown = sorted(set(by_tier) - known)
                if unknown:
                    self.add_error("percent_by_tier", f"Unknown tier codes: {', '.join(unknown)}.")
        tiers = cleaned.get("tiers") or []
        if tiers:
            unknown = sorted(set(tiers) - set(Tier.objects.values_list("code", flat=True)))
            if unknown:
                self.add_error("tiers", f"Unknown tier codes: {', '.join(unknown)}.")
        return cleaned

    def rule_data(self) -> dict[str, Any]:
        """The rule as plain data for ``services.create_rule_set`` / ``update_rule_set``."""
        c = self.cleaned_data
        action = c["action"]
        return {
            "name": c["name"],
            "metric": c["metric"],
            "action": action,
            "position": c.get("position") or 0,
            "points": c.get("points") if action in (Rule.Action.FIXED, Rule.Action.PER_AMOUNT) else None,
            "unit_amount": c.get("unit_amount") if action == Rule.Action.PER_AMOUNT else None,
            "percent_by_tier": c.get("percent_by_tier") or {} if action == Rule.Action.PERCENT_OF_AMOUNT else {},
            "min_amount": c.get("min_amount"),
            "channels": c.get("channels") or [],
            "stores": c.get("stores") or [],
            "tiers": c.get("tiers") or [],
        }


def next_local_midnight() -> dt.datetime:
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    return timezone.make_aware(dt.datetime.combine(tomorrow, dt.time()))


class NewVersionForm(forms.Form):
    valid_from = forms.DateTimeField(
        required=False,
        label="Starts",
        help_text="Empty: tomorrow 00:00. It must still be in the future when you publish.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
    )

    def clean_valid_from(self) -> dt.datetime:
        return self.cleaned_data.get("valid_from") or next_local_midnight()


class RetireRuleSetForm(forms.Form):
    reason = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"class": "vTextField"}))

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("This field is required.")
        return reason


class PreviewEarningForm(forms.Form):
    member = forms.CharField(
        required=False, max_length=64, label="Member (customer id)", help_text="Uses the member's tier at that date."
    )
    tier = forms.ModelChoiceField(
        queryset=Tier.objects.order_by("rank"), required=False, help_text="Or pick a tier instead of a member."
    )
    occurred_at = forms.DateTimeField(
        required=False,
        label="Purchase date",
        help_text="Empty: now. Local time of the admin.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
    )
    amount = forms.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    channel = forms.CharField(required=False, max_length=32)
    store = forms.CharField(required=False, max_length=64)

    def clean_member(self) -> Member | None:
        external_id = (self.cleaned_data.get("member") or "").strip()
        if not external_id:
            return None
        member = Member.objects.select_related("tier").filter(external_id=external_id).first()
        if member is None:
            raise forms.ValidationError(f"No member with customer id {external_id!r}.")
        return member

    def clean_occurred_at(self) -> dt.datetime:
        return self.cleaned_data.get("occurred_at") or timezone.now()

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("member") and cleaned.get("tier"):
            raise forms.ValidationError("Pick a member or a tier, not both.")
        if not self.errors and not cleaned.get("member") and not cleaned.get("tier"):
            raise forms.ValidationError("Pick a member or a tier.")
        return cleaned


class ReturnTransactionForm(forms.Form):
    amount = forms.DecimalField(
        required=False,
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        help_text="Empty: everything not yet returned.",
    )
    reason = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"class": "vTextField"}))

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("This field is required.")
        return reason
