"""Who acts: a signed-in user, or the system itself (beat jobs, the outbox, data migrations)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class SystemActor:
    """The actor of work nobody started by hand.

    Explicit, so that a forgotten actor (``None``) can be refused instead of silently skipping the
    permission checks. It holds every permission, is nobody for four-eyes checks (it never equals a
    person) and is recorded in history without a user (the change reason says what ran).
    """

    is_authenticated = False
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, name: str = "system") -> None:
        self.username = name

    def get_username(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return True

    def has_perms(self, perms: Any, obj: Any = None) -> bool:
        return True

    def __str__(self) -> str:
        return self.username

    def __repr__(self) -> str:
        return f"SystemActor({self.username!r})"


SYSTEM = SystemActor()

# Who a service may be called by: a user (signed in, or anonymous and then refused by the permission
# checks) or the system.
Actor = AbstractBaseUser | AnonymousUser | SystemActor


def is_system(actor: Any) -> bool:
    return isinstance(actor, SystemActor)


def check_actor(actor: Any, where: str = "a service") -> None:
    """Refuse ``None`` (or anything that is neither a user nor ``SYSTEM``) as who acts: a caller that
    forgot the actor fails loudly instead of acting as nobody, or silently as the system."""
    if actor is None:
        raise TypeError(f"{where}: actor=None; pass the acting user, or loyalty.kernel.SYSTEM for work nobody started.")
    if not isinstance(actor, SystemActor) and not callable(getattr(actor, "has_perm", None)):
        raise TypeError(f"{where}: {actor!r} is not an actor (a user or loyalty.kernel.SYSTEM).")
