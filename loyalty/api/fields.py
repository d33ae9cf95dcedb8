"""Serializer fields the whole API shares."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field({"type": "string"})
class ChoiceStringField(serializers.ChoiceField):
    """A choice documented as a string with its values in the description.

    Not as an enum component: enum components are named after the field, and the project has several
    unrelated ``status`` and ``kind`` choice sets, whose names would collide in the schema.
    """

    def __init__(self, choices, **kwargs):
        values = ", ".join(str(c[0] if isinstance(c, tuple | list) else c) for c in choices)
        help_text = kwargs.pop("help_text", "")
        kwargs["help_text"] = f"{help_text} One of: {values}.".strip()
        super().__init__(choices, **kwargs)
