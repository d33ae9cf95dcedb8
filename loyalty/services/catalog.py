"""Program configuration objects (metrics, tiers) created through the API."""

from __future__ import annotations

from django.db import models

from loyalty.exceptions import AlreadyExists
from loyalty.kernel import Actor, outer_service, require_perm, save_unique


@outer_service
def create_config_object(*, obj: models.Model, actor: Actor, reason: str = "Created via the API") -> models.Model:
    """Save a new metric or tier (history records who created it); 409 ``already_exists`` when
    its code or rank is taken."""
    require_perm(actor, f"{obj._meta.app_label}.add_{obj._meta.model_name}")
    taken = AlreadyExists(f"{obj._meta.verbose_name.capitalize()} {obj} already exists (code and rank are unique).")
    save_unique(obj, actor=actor, reason=reason, duplicate=taken)
    return obj
