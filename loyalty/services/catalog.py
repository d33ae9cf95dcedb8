"""Program configuration objects (metrics, tiers) created through the API."""

from __future__ import annotations

from django.db import IntegrityError, models, transaction

from loyalty.exceptions import AlreadyExists
from loyalty.kernel import Actor, outer_service, require_perm, save_with_history


@outer_service
def create_config_object(*, obj: models.Model, actor: Actor, reason: str = "Created via the API") -> models.Model:
    """Save a new metric or tier (history records who created it); 409 ``already_exists`` when
    its code or rank is taken."""
    require_perm(actor, f"{obj._meta.app_label}.add_{obj._meta.model_name}")
    try:
        with transaction.atomic():
            save_with_history(obj, actor=actor, reason=reason)
    except IntegrityError as exc:
        raise AlreadyExists(
            f"{obj._meta.verbose_name.capitalize()} {obj} already exists (code and rank are unique)."
        ) from exc
    return obj
