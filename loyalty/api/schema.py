"""The OpenAPI schema generator (drf-spectacular) with the API's truths that it cannot see itself.

* **Nullable by the model**: a response field whose source runs through a nullable model field
  (``metric`` of a campaign, ``member.external_id`` of a transaction, ``previous`` of a rule set)
  is marked ``nullable``, whether the serializer declared it or not; one rule instead of an
  ``allow_null`` to remember on every declared field.
* **Errors**: every operation lists the error answers it can give, in the one error shape.
"""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from drf_spectacular import openapi, plumbing
from rest_framework import serializers


def _model_of(serializer) -> type[models.Model] | None:
    meta = getattr(serializer, "Meta", None)
    return getattr(meta, "model", None)


def source_can_be_null(field: serializers.Field) -> bool:
    """Whether the model path behind ``field`` (its ``source``) passes a nullable field or relation."""
    parent = field.parent
    if parent is None or isinstance(parent, serializers.ListSerializer):
        return False  # the item of a list: the list's own field says whether it is there
    model = _model_of(parent)
    if model is None or field.source == "*":
        return False
    for attr in field.source.split("."):
        try:
            model_field = model._meta.get_field(attr)
        except FieldDoesNotExist:
            return False  # a property or method: its type hint decides
        if getattr(model_field, "many_to_many", False) or getattr(model_field, "one_to_many", False):
            return False  # a list, never null
        if getattr(model_field, "null", False):
            return True
        model = model_field.related_model
        if model is None:
            return False
    return False


class ErrorOut(serializers.Serializer):
    """The one error shape of the API."""

    code = serializers.CharField(help_text="A stable machine code, e.g. insufficient_points.")
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    errors = serializers.DictField(help_text="Field errors: {field: [messages]}; empty when there are none.")


ERRORS = {
    "400": "Invalid or malformed input (invalid, malformed_request).",
    "401": "No credentials, or an unknown, revoked or expired API key.",
    "403": "The key's user lacks a permission (permission_denied).",
    "404": "Unknown object in the path, or a page beyond the last (not_found).",
    "409": "A state conflict (invalid_transition, insufficient_points, ...).",
    "422": "A business rule said no (four_eyes_required, ...).",
    "429": "Throttled, or locked out after failed attempts (throttled, too_many_attempts).",
}


def _error_codes(path: str, method: str, *, paginated: bool) -> list[str]:
    codes = ["400", "401", "403", "429"]  # any request: a NUL in the URL, no key, a role, the rate
    if "{" in path or paginated:  # an unknown object in the path; a page beyond the last
        codes.append("404")
    if method not in ("GET", "HEAD", "OPTIONS"):
        codes += ["409", "422"]
    return sorted(codes)


def lib_doc_excludes() -> list[type]:
    """Classes whose docstrings describe code, not an endpoint or a schema: DRF's and the kernel's bases."""
    from .answers import ModelOut
    from .views import ServiceAction

    return [*plumbing.get_lib_doc_excludes(), ServiceAction, ModelOut]


class AutoSchema(openapi.AutoSchema):
    def _get_serializer_field_meta(self, field, direction):
        meta = super()._get_serializer_field_meta(field, direction)
        if direction == "response" and not meta.get("nullable") and source_can_be_null(field):
            meta["nullable"] = True
        return meta

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        paginated = self.method == "GET" and self._is_list_view() and self._get_paginator() is not None
        for code in _error_codes(self.path, self.method, paginated=paginated):
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorOut, code, ["application/json"], direction)
                responses[code]["description"] = ERRORS[code]
        return responses
