"""Shared API building blocks: Idempotency-Key handling, permission helpers, lookups.

Every POST that creates or moves something is wrapped with ``@idempotent``: the first response to a
(user, key) pair is stored; the same key with the same body replays it (and does nothing twice);
the same key with a different body is 422 ``idempotency_key_reused``. Successes and business
refusals (409/422) are stored; 400/401/403/404/429/5xx are not, so a corrected retry runs. Keys are
kept for IDEMPOTENCY_KEY_TTL_HOURS (purged by a beat task).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response

from loyalty.exceptions import DomainError
from loyalty.models import IdempotencyRecord, Member

from .errors import error_response

MAX_KEY_LENGTH = 255

IDEMPOTENCY_KEY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Any unique string (a UUID) per intended action. Retrying with the same key and body replays "
        "the first answer (header Idempotent-Replayed: true) instead of acting twice; the same key with "
        f"another body is 422 idempotency_key_reused. At most {MAX_KEY_LENGTH} characters."
    ),
)


def _request_hash(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def idempotent(view_method: Callable) -> Callable:
    """Make a POST handler honour the Idempotency-Key header (see the module docstring)."""

    @wraps(view_method)
    def wrapper(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get("Idempotency-Key")
        if not key:
            return view_method(self, request, *args, **kwargs)
        if len(key) > MAX_KEY_LENGTH:
            return error_response(
                "invalid",
                "The Idempotency-Key header is too long.",
                {"Idempotency-Key": [f"At most {MAX_KEY_LENGTH} characters."]},
                400,
            )
        digest = _request_hash(request)  # parses the body first: malformed JSON is a 400 and stores nothing
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    user=request.user, key=key, method=request.method, path=request.path[:500], request_hash=digest
                )
        except IntegrityError:
            record = IdempotencyRecord.objects.get(user=request.user, key=key)
            if record.request_hash != digest:
                return error_response(
                    "idempotency_key_reused", "This Idempotency-Key was used with a different request.", status_code=422
                )
            if record.response_status is None:
                return error_response(
                    "idempotency_request_in_progress",
                    "The first request with this Idempotency-Key is still running.",
                    status_code=409,
                )
            response = Response(record.response_body, status=record.response_status)
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            response = view_method(self, request, *args, **kwargs)
        except DomainError as exc:
            # Nothing was written; a state or business refusal is stored so a retry gets the same answer.
            response = error_response(exc.code, exc.detail, exc.errors, exc.status)
        except Exception:
            record.delete()
            raise
        if not (200 <= response.status_code < 300 or response.status_code in (409, 422)):
            # Only results and business refusals are final. Invalid input, auth, unknown ids,
            # throttling and server errors changed nothing: a retry with the key runs again.
            record.delete()
        else:
            record.response_status = response.status_code
            record.response_body = json.loads(json.dumps(response.data, default=str))
            record.save(update_fields=["response_status", "response_body"])
        return response

    return extend_schema(parameters=[IDEMPOTENCY_KEY_HEADER])(wrapper)


def has_perms(*perms: str) -> type[permissions.BasePermission]:
    """A permission class requiring every given Django permission (services check them again)."""

    class HasPerms(permissions.BasePermission):
        message = f"You need the permission(s) {', '.join(perms)}."
        required = perms  # read by the permission matrix (loyalty/permission_map.py)

        def has_permission(self, request, view) -> bool:
            return bool(request.user and request.user.is_authenticated and request.user.has_perms(perms))

    HasPerms.__name__ = f"HasPerms({', '.join(perms)})"
    return HasPerms


class ReadWritePerms(permissions.BasePermission):
    """GET needs ``read``, other methods ``write`` (set on the view as read_perms / write_perms)."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        perms = view.read_perms if request.method in permissions.SAFE_METHODS else view.write_perms
        return request.user.has_perms(perms)


def member_or_404(external_id: str) -> Member:
    return get_object_or_404(Member.objects.select_related("tier"), external_id=external_id)
