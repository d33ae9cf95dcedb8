"""Forms of the redemptions admin. They validate input only; every write goes through ``services``."""

from __future__ import annotations

from django import forms
from django.db.models import Q
from django.utils import timezone

from loyalty.kernel.forms import CatalogueChoiceField
from loyalty.models import Reward

from .models import Redemption, Rollback

TEXT = {"class": "vTextField"}


def _strip_required(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise forms.ValidationError("This field is required.")
    return value


class ReasonForm(forms.Form):
    """Reject / return a redemption, reject a rollback: a reason is required."""

    reason = forms.CharField(max_length=255, widget=forms.TextInput(attrs=TEXT))

    def clean_reason(self):
        return _strip_required(self.cleaned_data["reason"])


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(max_length=255, required=False, widget=forms.TextInput(attrs=TEXT))


class ChangeStatusForm(forms.Form):
    status = forms.ChoiceField(label="New status", choices=Redemption.Status.choices)
    reason = forms.CharField(max_length=255, required=False, widget=forms.TextInput(attrs=TEXT))


class ChangeAwardStatusForm(forms.Form):
    award_status = forms.ChoiceField(label="New award status", choices=Redemption.AwardStatus.choices)
    reason = forms.CharField(max_length=255, required=False, widget=forms.TextInput(attrs=TEXT))


class ChangeFulfillmentForm(forms.Form):
    fulfillment_status = forms.ChoiceField(label="New fulfillment status", choices=Redemption.Fulfillment.choices)
    tracking_ref = forms.CharField(
        label="Tracking reference",
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs=TEXT),
        help_text="Optional; applied to every selected row.",
    )
    reason = forms.CharField(max_length=255, required=False, widget=forms.TextInput(attrs=TEXT))


class RollbackForm(forms.Form):
    reason = forms.ChoiceField(choices=Rollback.Reason.choices)
    points = forms.IntegerField(
        required=False,
        min_value=1,
        help_text="Leave empty to give back everything still spent (a full rollback); a number rolls back part.",
        widget=forms.NumberInput(attrs={"class": "vIntegerField", "step": 1}),
    )
    note = forms.CharField(required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 2, "cols": 50}))


def active_rewards():
    now = timezone.now()
    return (
        Reward.objects.filter(active=True)
        .filter(Q(active_from__isnull=True) | Q(active_from__lte=now))
        .filter(Q(active_until__isnull=True) | Q(active_until__gt=now))
        .select_related("metric")
        .order_by("name", "id")
    )


class RewardChoiceField(CatalogueChoiceField):
    def label_from_instance(self, obj: Reward) -> str:
        stock = "" if obj.stock is None else f", {obj.stock} in stock"
        approval = ", needs approval" if obj.requires_approval else ""
        return f"{obj.name} — {obj.points:,} {obj.metric.code}{stock}{approval}"


class RedeemForm(forms.Form):
    reward = RewardChoiceField(queryset=Reward.objects.none(), empty_label="Choose a reward…")
    quantity = forms.IntegerField(
        min_value=1, max_value=100, initial=1, widget=forms.NumberInput(attrs={"class": "vIntegerField", "step": 1})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reward"].queryset = active_rewards()


class AwardForm(forms.Form):
    reward = RewardChoiceField(queryset=Reward.objects.none(), empty_label="Choose a reward…", label="Reward")
    reason = forms.CharField(max_length=255, widget=forms.TextInput(attrs=TEXT))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reward"].queryset = active_rewards()
        self.fields["reward"].widget.attrs["id"] = "id_award_reward"
        self.fields["reason"].widget.attrs["id"] = "id_award_reason"

    def clean_reason(self):
        return _strip_required(self.cleaned_data["reason"])


class ImportForm(forms.Form):
    """Step one of an import: the file. Step two (confirm) re-sends the file's content, signed."""

    import_file = forms.FileField(label="File (CSV or XLSX)")

    MAX_BYTES = 10 * 1024 * 1024

    def clean_import_file(self):
        f = self.cleaned_data["import_file"]
        if f.size > self.MAX_BYTES:
            raise forms.ValidationError("The file is larger than 10 MB; split it.")
        name = (f.name or "").lower()
        if not name.endswith((".csv", ".xlsx")):
            raise forms.ValidationError("Upload a .csv or .xlsx file.")
        return f
