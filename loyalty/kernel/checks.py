"""The checks every service makes, written once: permission, four-eyes, reason, whole numbers.

Services raise the domain errors below; the API turns them into 4xx answers and the admin into
messages, so a failed check changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from loyalty.exceptions import FourEyesRequired, InvalidInput, PermissionRequired

from .actors import is_system


def require_perm(actor: Any, perm: str) -> None:
    """Refuse unless ``actor`` holds ``perm``. The system actor holds every permission; a missing
    actor (``None``) holds none: work nobody started by hand passes ``SYSTEM`` explicitly."""
    if actor is None:
        raise PermissionRequired(f"You need the permission {perm!r} (no actor was given).")
    if is_system(actor):
        return
    if not actor.has_perm(perm):
        raise PermissionRequired(f"You need the permission {perm!r}.")


def history_user(actor: Any) -> AbstractBaseUser | None:
    """The user to record as who did it (``changed_by``, ``created_by``...): nobody for the system."""
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def actor_name(actor: Any) -> str:
    """The username recorded on timelines (empty for nobody)."""
    return getattr(actor, "username", "") or ""


def require_four_eyes(author_id: int | None, actor: Any, detail: str) -> None:
    """A second person decides: refuse when ``actor`` is the one who asked (``author_id``).

    The system actor is nobody, so it never counts as the author of a person's request."""
    if author_id is not None and author_id == getattr(actor, "pk", None):
        raise FourEyesRequired(detail)


def require_reason(reason: str | None, *, field: str = "reason") -> str:
    """A non-blank reason (for history and the member's email); returns it stripped."""
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("A reason is required.", errors={field: ["This field is required."]})
    return text


def is_whole_number(value: Any, minimum: int | None = None, maximum: int | None = None) -> bool:
    """True for an ``int`` (not a ``bool``) within the optional bounds (inclusive)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def check_whole_number(
    value: Any,
    *,
    field: str,
    detail: str,
    error: str,
    minimum: int | None = 1,
    maximum: int | None = None,
) -> int:
    """Return ``value`` if it is a whole number within the bounds, else raise ``InvalidInput``
    with ``detail`` and ``{field: [error]}``."""
    if not is_whole_number(value, minimum, maximum):
        raise InvalidInput(detail, errors={field: [error]})
    return value
