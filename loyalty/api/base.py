"""Shared API building blocks: Idempotency-Key handling, permission helpers, lookups.

Every POST that creates or moves something is wrapped with ``@idempotent``: the first response to a
(user, key) pair is stored; the same key with the same body replays it (and does nothing twice);
the same key with a different body is 422 ``idempotency_key_reused``. Successes and business
refusals (409/422) are stored; 400/401/403/404/429/5xx are not, so a corrected retry runs. Keys are
kept for IDEMPOTENCY_KEY_TTL_HOURS (purged by a beat task).

How it holds under failures and races:
- The key is claimed first, in its own short transaction, with a lease (IDEMPOTENCY_LEASE_SECONDS)
  and a random token. A concurrent request with the key gets 409 ``idempotency_request_in_progress``;
  once the lease has run out (the first request died: a killed worker, a lost connection) a retry
  takes the key over with a conditional UPDATE and runs again, safely, since every operation
  re-checks its state under its locks.
- The view runs in one transaction with the storing of its answer, ``loyalty.kernel.unit_of_work``
  (the outer services it calls join it instead of starting their own): the work and the answer
  commit together or not at all. A request whose work committed therefore always replays, and a request
  that lost its key to a takeover meanwhile rolls its work back instead of doing it a second time.
  Side effects are outbox rows (``loyalty.outbox``) published after that commit, so a broker that
  is down cannot turn committed work into an error.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response

from loyalty.exceptions import DomainError
from loyalty.kernel import unit_of_work
from loyalty.models import IdempotencyRecord, Member

from .errors import error_response

logger = logging.getLogger(__name__)

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


class _Claim:
    """The key held by this request: its record and the token that proves the lease is ours."""

    def __init__(self, record: IdempotencyRecord, token: str):
        self.record, self.token = record, token

    def release(self) -> None:
        """Forget the key (nothing final was answered), unless someone else holds it by now."""
        try:
            IdempotencyRecord.objects.filter(pk=self.record.pk, lock_token=self.token).delete()
        except DatabaseError:  # the connection is gone; the lease frees the key in a minute
            logger.warning("Could not release Idempotency-Key %s", self.record.key, exc_info=True)

    def store(self, response: Response) -> bool:
        """Store the final answer, in the caller's transaction; False if the key was taken over."""
        body = json.loads(json.dumps(response.data, default=str))
        return bool(
            IdempotencyRecord.objects.filter(
                pk=self.record.pk, lock_token=self.token, response_status__isnull=True
            ).update(response_status=response.status_code, response_body=body, locked_until=None)
        )


def _replay(record: IdempotencyRecord) -> Response:
    response = Response(record.response_body, status=record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def _in_progress() -> Response:
    return error_response(
        "idempotency_request_in_progress",
        "The first request with this Idempotency-Key is still running; retry later.",
        status_code=409,
    )


def _claim_key(request: Request, key: str, digest: str) -> _Claim | Response:
    """Take the key for this request, or answer for it (a replay, a reuse, a request in progress)."""
    lease = dt.timedelta(seconds=settings.IDEMPOTENCY_LEASE_SECONDS)
    for _ in range(5):  # the holder may delete its record between our INSERT and our SELECT
        token = secrets.token_hex(16)
        now = timezone.now()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    user=request.user,
                    key=key,
                    method=request.method,
                    path=request.path[:500],
                    request_hash=digest,
                    locked_until=now + lease,
                    lock_token=token,
                )
            return _Claim(record, token)
        except IntegrityError:
            pass
        record = IdempotencyRecord.objects.filter(user=request.user, key=key).first()
        if record is None:
            continue
        if record.request_hash != digest:
            return error_response(
                "idempotency_key_reused", "This Idempotency-Key was used with a different request.", status_code=422
            )
        if record.response_status is not None:
            return _replay(record)
        if record.locked_until is not None and record.locked_until > now:
            return _in_progress()
        taken = IdempotencyRecord.objects.filter(
            Q(locked_until__isnull=True) | Q(locked_until__lte=now),
            pk=record.pk,
            response_status__isnull=True,
        ).update(locked_until=now + lease, lock_token=token)
        if taken:  # the first request died holding the key: run again (the operation re-checks state)
            return _Claim(record, token)
        # Someone else answered or took it over just now: look again.
    return _in_progress()


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
        claim = _claim_key(request, key, digest)
        if isinstance(claim, Response):
            return claim
        stored = False
        try:
            # The unit of work of this request: the services the view calls join it, so the work
            # and its stored answer commit together (or not at all).
            with unit_of_work(f"Idempotency-Key {request.method} {request.path}"):
                try:
                    response = view_method(self, request, *args, **kwargs)
                except DomainError as exc:
                    # A state or business refusal is final: stored, so a retry gets the same answer.
                    # What the service wrote before refusing (e.g. failed code attempts) still commits.
                    response = error_response(exc.code, exc.detail, exc.errors, exc.status)
                final = 200 <= response.status_code < 300 or response.status_code in (409, 422)
                if final and not transaction.get_rollback():
                    stored = claim.store(response)
                    if not stored:  # our lease ran out and a retry took the key: it does the work
                        transaction.set_rollback(True)
                        response = _in_progress()
                        final = False
        except Exception:
            claim.release()  # nothing committed: a retry with the key runs again
            raise
        if not stored:
            # Invalid input, auth, unknown ids, throttling and server errors changed nothing:
            # a retry with the key runs again.
            claim.release()
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
    """GET needs ``read``, other methods ``write``; a method in ``by_method`` its own list.
    Declared with ``read_write(...)``, which fills them in."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    by_method: dict[str, tuple[str, ...]] = {}

    @classmethod
    def perms_for(cls, method: str) -> tuple[str, ...]:
        """What ``method`` needs (read by the permission matrix too: loyalty/permission_map.py)."""
        if cls is ReadWritePerms:
            raise TypeError("Declare the permissions with read_write(read=[...], write=[...]).")
        if method in cls.by_method:
            return cls.by_method[method]
        return cls.read if method in permissions.SAFE_METHODS else cls.write

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.user.has_perms(self.perms_for(request.method))


def read_write(read: list[str], write: list[str], **by_method: list[str]) -> type[ReadWritePerms]:
    """A permission class: safe methods need every ``read`` permission, the others every ``write``
    one; ``DELETE=[...]`` (any method by name) gives that method its own (services check again)."""
    declared = {"read": tuple(read), "write": tuple(write), "by_method": {m: tuple(p) for m, p in by_method.items()}}
    return type(f"ReadWrite({', '.join(read)} / {', '.join(write)})", (ReadWritePerms,), declared)


def member_or_404(external_id: str) -> Member:
    return get_object_or_404(Member.objects.select_related("tier"), external_id=external_id)
