"""One helper moves every status field, checking the model's explicit transition table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models

from .exceptions import InvalidTransition


def check_transition(
    table: Mapping[str, set[str] | frozenset[str]], current: str | None, target: str, *, field: str
) -> None:
    if current == target or target not in table.get(current, ()):
        raise InvalidTransition(
            f"{field} cannot move from {current or 'none'} to {target}.",
            errors={field: [f"Allowed from {current or 'none'}: {sorted(table.get(current, ())) or 'nothing'}."]},
        )


def transition(
    obj: models.Model,
    field: str,
    target: str,
    table: Mapping[str, Any],
    *,
    actor: Any,
    reason: str,
    extra_update_fields: tuple[str, ...] = (),
) -> None:
    """Move ``obj.<field>`` to ``target`` if the table allows it and save with who/why in history."""
    check_transition(table, getattr(obj, field), target, field=field)
    setattr(obj, field, target)
    save_with_history(obj, actor=actor, reason=reason, update_fields=(field, *extra_update_fields))


def save_with_history(
    obj: models.Model, *, actor: Any, reason: str, update_fields: tuple[str, ...] | list[str] | None = None
) -> None:
    """Save so that django-simple-history records the acting user and the change reason."""
    if actor is not None and getattr(actor, "is_authenticated", False):
        obj._history_user = actor
    obj._change_reason = (reason or "")[:100]
    if update_fields is not None:
        fields = set(update_fields)
        if any(f.name == "updated_at" for f in obj._meta.fields):
            fields.add("updated_at")
        obj.save(update_fields=sorted(fields))
    else:
        obj.save()
