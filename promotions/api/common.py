"""Shared bits of the promotions API views."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions


class BodyLimitMixin:
    """A body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 400 in the API's error shape, not Django's HTML page.

    (Belongs in loyalty.api.errors.exception_handler for every view; kept here until it moves there.)
    """

    def handle_exception(self, exc):
        if isinstance(exc, RequestDataTooBig):
            exc = exceptions.ParseError("The request body is too large.")
        return super().handle_exception(exc)
