"""Form fields shared by the screens."""

from __future__ import annotations

from django import forms
from django.forms.models import ModelChoiceIterator


class _PlainQueryIterator(ModelChoiceIterator):
    # Django's iterator reads the choices through QuerySet.iterator(): on PostgreSQL a server-side
    # cursor, i.e. DECLARE, FETCH and CLOSE for a select of a dozen rows.
    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset.all():
            yield self.choice(obj)


class CatalogueChoiceField(forms.ModelChoiceField):
    """A choice among a small catalogue table (metrics, tiers, rewards): its options read by one
    plain query. (A page with four such selects made twelve round trips for them.)"""

    iterator = _PlainQueryIterator
