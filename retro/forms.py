"""Forms of the retro claims admin. They validate input only; every write goes through ``services``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms
from django.utils import timezone

from loyalty.models import Transaction


class RejectClaimsForm(forms.Form):
    reason = forms.CharField(
        max_length=255,
        widget=forms.TextInput(attrs={"class": "vTextField", "size": 60}),
        help_text="Recorded on each claim and in its history.",
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("This field is required.")
        return reason


def _day_start(day: dt.date, *, plus_days: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=plus_days), dt.time()))


class RetroSearchForm(forms.Form):
    """Non-loyalty purchases a member may have made: GET parameters on the member page."""

    prefix = "retro"
    bill = forms.CharField(required=False, max_length=64, label="Bill number")
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    store = forms.CharField(required=False, max_length=64)
    amount = forms.DecimalField(
        required=False,
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        widget=forms.NumberInput(attrs={"step": "0.01"}),
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", "Must not be before the start.")
        return cleaned

    def has_criteria(self) -> bool:
        return self.is_bound and self.is_valid() and any(v not in (None, "") for v in self.cleaned_data.values())

    def search(self, limit: int = 20) -> list[Transaction]:
        """Up to ``limit`` purchases without a member, newest first (exact, index-friendly lookups)."""
        data = self.cleaned_data
        qs = Transaction.objects.filter(member__isnull=True)
        if data.get("bill"):
            qs = qs.filter(external_id=data["bill"].strip())
        if data.get("store"):
            qs = qs.filter(store=data["store"].strip())
        if data.get("amount") is not None:
            qs = qs.filter(amount=data["amount"])
        if data.get("date_from"):
            qs = qs.filter(occurred_at__gte=_day_start(data["date_from"]))
        if data.get("date_to"):
            qs = qs.filter(occurred_at__lt=_day_start(data["date_to"], plus_days=1))
        return list(qs.order_by("-occurred_at", "-id")[:limit])


class FileClaimForm(forms.Form):
    transaction = forms.ModelChoiceField(
        queryset=Transaction.objects.filter(member__isnull=True), widget=forms.HiddenInput
    )
    note = forms.CharField(required=False, max_length=1000)
    next = forms.CharField(required=False, widget=forms.HiddenInput)
