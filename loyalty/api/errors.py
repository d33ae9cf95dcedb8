"""One error shape for the whole API: {"code", "detail", "errors"}."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from loyalty.exceptions import DomainError

_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


logger = logging.getLogger("loyalty.api")


def error_response(code: str, detail: str, errors: dict[str, Any] | None = None, status_code: int = 400) -> Response:
    return Response({"code": code, "detail": detail, "errors": errors or {}}, status=status_code)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        return error_response(exc.code, exc.detail, exc.errors, exc.status)
    if isinstance(exc, RequestDataTooBig):
        exc = exceptions.ParseError("The request body is too large.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return server_error(exc, context)
    if not isinstance(exc, exceptions.APIException):
        return response
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        detail = "The input is invalid."
        response.data = {"code": code, "detail": detail, "errors": errors}
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    response.data = {"code": code, "detail": str(detail), "errors": {}}
    return response


def server_error(exc: Exception, context: dict) -> Response:
    """Anything unexpected (a bug, the database connection lost mid-request): a 500 in the error shape.

    The exception has already left the transaction it happened in, which rolled back (every service
    is atomic, and so is a request with an Idempotency-Key); the traceback goes to the log, and the
    client learns nothing internal.
    """
    request = context.get("request")
    logger.error(
        "Unhandled error in %s %s", getattr(request, "method", "?"), getattr(request, "path", "?"), exc_info=exc
    )
    return error_response("server_error", "Something went wrong on our side. Please retry later.", status_code=500)


def not_found_view(request, exception=None):
    """Django's 404 for a URL no route matches (``handler404``): in the API's error shape under
    /api/ (``/api/v1/campaigns/abc/``: the id must be a number), the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "detail": "Not found.", "errors": {}}, status=404)
    return defaults.page_not_found(request, exception)
