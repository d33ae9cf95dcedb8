"""Filter fields shared by the API's filter sets."""

from __future__ import annotations

import datetime as dt

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 timestamp, compared in UTC.

    Python accepts offsets up to ±23:59 but PostgreSQL only ±15:59, so a timestamp such as
    ``...+22:00`` is converted before it reaches the query instead of failing there.
    """

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(dt.UTC)
        except OverflowError:
            raise ValidationError("This timestamp is out of range.", code="overflow") from None


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField
