"""Request parsers that refuse NUL characters.

PostgreSQL cannot store U+0000 in text or jsonb, and a lookup with one is a database error, not
"not found". DRF's CharField already refuses them, but related-object lookups, dict keys and JSON
fields do not, so every parsed body is checked once here: 400 ``malformed_request``.
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

NUL = "\x00"


def contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if hasattr(value, "lists"):  # a QueryDict (a dict whose items() shows one value per key)
        return any(contains_nul(k) or contains_nul(v) for k, v in value.lists())
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(v) for v in value)
    return False


class _RefuseNul:
    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        data = parsed.data if isinstance(parsed, parsers.DataAndFiles) else parsed
        if contains_nul(data):
            raise ParseError("Null characters (U+0000) are not allowed.")
        return parsed


class JSONParser(_RefuseNul, parsers.JSONParser):
    pass


class FormParser(_RefuseNul, parsers.FormParser):
    pass


class MultiPartParser(_RefuseNul, parsers.MultiPartParser):
    pass
