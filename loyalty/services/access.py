"""API keys: create (the key is returned once), revoke (with a reason, in history), authenticate.

Only the SHA-256 digest of a key is stored, so verifying one is a single indexed lookup; see
``loyalty.models.access`` for why that is enough for a 240-bit random key.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.utils import timezone

from loyalty.kernel import (
    Actor,
    is_whole_number,
    outer_service,
    require_perm,
    save_with_history,
)

from ..exceptions import ApiKeyRejected, InvalidInput, InvalidTransition
from ..models.access import KEY_PREFIX, PREFIX_LENGTH, ApiKey, key_digest

logger = logging.getLogger("loyalty.signin")

MAX_EXPIRY_DAYS = 3650
# last_used_at is written at most this often per key: one cheap UPDATE, not one per request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    key: str  # the secret itself: show it once, never store it


def _new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(30)  # 40 characters, 240 random bits


@outer_service
def create_api_key(
    *,
    owner: AbstractBaseUser,
    name: str,
    expires_in_days: int | None = None,
    actor: Actor,
    reason: str = "API key created",
) -> NewApiKey:
    """Make a key for ``owner`` (whose groups decide what it may do); the key is in the result only."""
    require_perm(actor, "loyalty.add_apikey")
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Give the key a name.", errors={"name": ["This field is required."]})
    if len(name) > 100:
        raise InvalidInput("The name is too long.", errors={"name": ["At most 100 characters."]})
    if not getattr(owner, "is_active", False):
        raise InvalidInput("The owner is not an active user.", errors={"owner": ["Inactive user."]})
    expires_at = None
    if expires_in_days is not None:
        if not is_whole_number(expires_in_days):
            raise InvalidInput("expires_in_days must be a whole number.", errors={"expires_in_days": ["An integer."]})
        if not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
            raise InvalidInput(
                f"A key expires after 1 to {MAX_EXPIRY_DAYS} days.",
                errors={"expires_in_days": [f"Between 1 and {MAX_EXPIRY_DAYS}."]},
            )
        expires_at = timezone.now() + dt.timedelta(days=expires_in_days)
    key = _new_secret()
    api_key = ApiKey(owner=owner, name=name, prefix=key[:PREFIX_LENGTH], digest=key_digest(key), expires_at=expires_at)
    save_with_history(api_key, actor=actor, reason=reason)
    return NewApiKey(api_key=api_key, key=key)


@outer_service
def revoke_api_key(*, api_key: ApiKey, actor: Actor, reason: str) -> ApiKey:
    """Stop a key for good (it answers 401 from now on); who and why stay on the key and in history."""
    require_perm(actor, "loyalty.revoke_apikey")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.", errors={"reason": ["This field is required."]})
    locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if locked.revoked_at is not None:
        raise InvalidTransition("This API key is already revoked.", errors={"status": ["Already revoked."]})
    locked.revoked_at = timezone.now()
    locked.revoked_by = actor if getattr(actor, "is_authenticated", False) else None
    locked.revoke_reason = reason[:255]
    save_with_history(
        locked, actor=actor, reason=f"Revoked: {reason}", update_fields=["revoked_at", "revoked_by", "revoke_reason"]
    )
    return locked


def authenticate_api_key(key: str) -> ApiKey:
    """The live key for ``key`` with its owner, or ApiKeyRejected. Records the use (at most once a
    minute per key, a conditional UPDATE outside any transaction).

    Runs its own transactions: the use is recorded with one conditional UPDATE (autocommit).
    """
    if not key or len(key) > 200:
        raise ApiKeyRejected()
    api_key = ApiKey.objects.select_related("owner").filter(digest=key_digest(key)).first()
    if api_key is None:
        raise ApiKeyRejected()
    now = timezone.now()
    if api_key.revoked_at is not None:
        raise ApiKeyRejected("This API key was revoked.")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise ApiKeyRejected("This API key has expired.")
    if not api_key.owner.is_active:
        raise ApiKeyRejected("The key's user is inactive.")
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


@outer_service
def unlock_sign_in(*, attempts, actor: Actor, reason: str) -> int:
    """Lift admin sign-in lockouts: forget the failed attempts (django-axes rows) of the given
    (username, IP) pairs. Needs ``axes.delete_accessattempt``; logged with who and why."""
    require_perm(actor, "axes.delete_accessattempt")
    rows = list(attempts.values_list("pk", "username", "ip_address"))
    if rows:
        attempts.model.objects.filter(pk__in=[r[0] for r in rows]).delete()
    for _pk, username, ip in rows:
        logger.warning(
            "Sign-in lockout lifted for %r from %s by %s: %s",
            username,
            ip,
            getattr(actor, "username", "system"),
            reason,
        )
    return len(rows)
