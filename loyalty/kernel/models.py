"""Model building blocks written once: choice tables and the fields every app's models repeat.

Nothing here changes a schema: each helper returns exactly the field or choices a model used to
spell out by hand, so ``makemigrations`` sees no difference.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from django.db import models


def choices(name: str, values: str, *, labels: Mapping[str, str] | None = None) -> type[models.TextChoices]:
    """A ``TextChoices`` table from its values, one word each: ``choices("Status", "pending rolled_back")``
    is ``Status.PENDING = "pending", "Pending"`` and ``Status.ROLLED_BACK = "rolled_back", "Rolled back"``.

    A label is its value in words unless ``labels`` says otherwise; a label for a value that is not
    in the table is a mistake and refused.
    """
    words = values.split()
    labels = dict(labels or {})
    if unknown := set(labels) - set(words):
        raise ValueError(f"{name}: labels for values it does not have: {sorted(unknown)}.")
    members = [(value.upper(), (value, labels.get(value, value.replace("_", " ").capitalize()))) for value in words]
    caller = sys._getframe(1)  # the class body that declares it: its module and name, for repr and pickle
    owner = caller.f_locals.get("__qualname__")
    return models.TextChoices(
        name, members, module=caller.f_globals["__name__"], qualname=f"{owner}.{name}" if owner else name
    )


def optional_ref(
    to: Any, *, on_delete: Any = models.PROTECT, related_name: str | None = "+", **options: Any
) -> models.ForeignKey:
    """An optional reference (``null=True, blank=True``): protected, and not followed backwards unless
    ``related_name`` names the reverse side (``None``: Django's default name)."""
    return models.ForeignKey(to, on_delete=on_delete, null=True, blank=True, related_name=related_name, **options)


class Timestamped(models.Model):
    """``created_at`` and ``updated_at``, set on save (``auto_now_add`` / ``auto_now``).

    Django lists an abstract base's fields first: in ``_meta.fields`` these two come right after
    ``id`` (the columns of existing tables stay where they are; no migration follows).
    """

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
