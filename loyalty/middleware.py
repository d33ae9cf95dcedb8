"""Refuse NUL characters in the URL before they reach a database lookup.

PostgreSQL rejects U+0000 in any text parameter, so ``/members/A%00B/`` or an admin search for one
would be a server error. The body is checked by the API's parsers and Django's form fields.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from loyalty.api.parsers import NUL, contains_nul

MESSAGE = "Null characters (U+0000) are not allowed."


class RefuseNullCharactersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if NUL in request.path or contains_nul(request.GET):
            if request.path.startswith("/api/"):
                return JsonResponse({"code": "malformed_request", "detail": MESSAGE, "errors": {}}, status=400)
            return HttpResponseBadRequest(MESSAGE, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class PermissionsPolicyMiddleware:
    """``Permissions-Policy`` on every answer: the browser features no page here uses are off."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response
