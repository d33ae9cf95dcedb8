"""Forms of the loyalty admin. They validate input only; every write goes through ``services``."""

from __future__ import annotations

import re
import uuid

from django import forms

from .exceptions import InvalidTransition
from .kernel import check_transition
from .kernel.forms import CatalogueChoiceField
from .models import ApiKey, Member, Metric, Tier
from .services import MAX_POINTS_PER_ENTRY

_TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")


class MemberAdminForm(forms.ModelForm):
    """The member's profile. Status moves are checked against ``Member.STATUS_TRANSITIONS`` here
    (a clear field error) and again by ``services.update_member`` when saving."""

    change_reason = forms.CharField(
        required=False,
        max_length=100,
        label="Reason for the change",
        help_text="Recorded in the member's history.",
    )

    class Meta:
        model = Member
        fields = ["external_id", "name", "email", "phone", "status", "marketing_opt_in", "tier"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._original_status = self.instance.status if self.instance.pk else None

    def clean(self):
        cleaned = super().clean()
        status = cleaned.get("status")
        if self._original_status and status and status != self._original_status:
            try:
                check_transition(Member.STATUS_TRANSITIONS, self._original_status, status, field="status")
            except InvalidTransition as exc:
                self.add_error("status", exc.detail)
        return cleaned


def _new_token() -> str:
    return uuid.uuid4().hex


class AdjustPointsForm(forms.Form):
    metric = CatalogueChoiceField(queryset=Metric.objects.order_by("code"), empty_label=None)
    amount = forms.IntegerField(
        min_value=-MAX_POINTS_PER_ENTRY,
        max_value=MAX_POINTS_PER_ENTRY,
        help_text="Positive credits, negative debits (never below zero).",
        widget=forms.NumberInput(attrs={"class": "vIntegerField", "step": 1}),
    )
    reason = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"class": "vTextField"}))
    # A fresh token per rendered form: a double submit re-uses it and credits nothing twice.
    token = forms.CharField(required=False, widget=forms.HiddenInput, initial=_new_token)

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("Must be non-zero.")
        return amount

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("This field is required.")
        return reason

    def clean_token(self):
        token = (self.cleaned_data.get("token") or "").strip().lower()
        if token and not _TOKEN_RE.match(token):
            raise forms.ValidationError("Invalid form token; reload the page.")
        return token


class ChangeTierForm(forms.Form):
    tier = CatalogueChoiceField(queryset=Tier.objects.order_by("rank"))
    reason = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"class": "vTextField"}))

    def __init__(self, *args, member: Member | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if member is not None and member.tier_id and not self.is_bound:
            self.fields["tier"].queryset = Tier.objects.exclude(pk=member.tier_id).order_by("rank")

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("This field is required.")
        return reason


def form_errors_text(form: forms.Form) -> str:
    """All of a form's errors in one line, for ``messages.error``."""
    parts = []
    for name, errors in form.errors.items():
        label = (form.fields[name].label or name.capitalize()) if name in form.fields else ""
        text = " ".join(str(e) for e in errors)
        parts.append(f"{label}: {text}" if label else text)
    return "; ".join(parts)


class ApiKeyCreateForm(forms.ModelForm):
    """The admin's "Add API key" page: owner and name, and optionally when it expires."""

    expires_in_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=3650,
        label="Expires in (days)",
        help_text="Leave empty for a key that does not expire (revoke it when it is no longer needed).",
    )

    class Meta:
        model = ApiKey
        fields = ["owner", "name"]


class ApiKeyRevokeForm(forms.Form):
    reason = forms.CharField(
        max_length=255,
        widget=forms.TextInput(attrs={"size": 60, "class": "vTextField"}),
        help_text="Kept on the key and in its history.",
    )
