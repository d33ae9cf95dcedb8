"""The one way a status field moves: check the model's table, set the field, record who and why.

A model declares its tables next to its fields: ``STATUS_TRANSITIONS`` for ``status`` and
``<NAME>_TRANSITIONS`` for ``<name>_status`` (``APPROVAL_TRANSITIONS`` for ``approval_status``);
``FULFILLMENT_TRANSITIONS`` for ``fulfillment_status``. Each maps a current value (``None`` for
unset) to the set of values it may move to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import IntegrityError, models, transaction
from simple_history.utils import get_history_manager_for_model

from loyalty.exceptions import DomainError, InvalidTransition

from .actors import check_actor


def transitions_of(model: type[models.Model] | models.Model, field: str) -> Mapping[Any, Any]:
    """The transition table a model declares for ``field``."""
    name = "STATUS" if field == "status" else field.removesuffix("_status").upper()
    table = getattr(model, f"{name}_TRANSITIONS", None)
    if table is None:
        raise LookupError(f"{model} declares no {name}_TRANSITIONS table for {field!r}.")
    return table


def check_transition(table: Mapping[Any, Iterable[Any]], current: str | None, target: str, *, field: str) -> None:
    """Refuse (409 ``invalid_transition``) unless ``table`` allows ``current`` -> ``target``."""
    if current == target or target not in table.get(current, ()):
        raise InvalidTransition(
            f"{field} cannot move from {current or 'none'} to {target}.",
            errors={field: [f"Allowed from {current or 'none'}: {sorted(table.get(current, ())) or 'nothing'}."]},
        )


def require_transition(obj: models.Model, field: str, target: str) -> None:
    """Refuse early (before other checks and locks) a move the model's table forbids; the move
    itself still goes through ``transition``."""
    check_transition(transitions_of(obj, field), getattr(obj, field), target, field=field)


def may_transition(obj: models.Model, field: str, target: str) -> bool:
    """Whether ``obj.<field>`` may move to ``target`` now (for a service that skips instead of refusing)."""
    current = getattr(obj, field)
    return current != target and target in transitions_of(obj, field).get(current, ())


def transition(
    obj: models.Model,
    moves: str | Mapping[str, str],
    target: str | None = None,
    *,
    actor: Any,
    reason: str,
    changes: Mapping[str, Any] | None = None,
    also: Iterable[str] = (),
    table: Mapping[Any, Any] | None = None,
) -> None:
    """Move one status field (``transition(obj, "status", X, ...)``) or several at once
    (``transition(obj, {"status": X, "award_status": Y}, ...)``), then save with history.

    Every move is checked against its table first (``table`` overrides the model's for a single
    field); nothing is set unless all are allowed. ``changes`` are other fields set in the same
    save (who decided, when); ``also`` names fields the caller already set that must be saved too.
    """
    check_actor(actor, "transition()")
    if isinstance(moves, str):
        if target is None:
            raise TypeError("transition(obj, field, target): the target is missing.")
        moves = {moves: target}
    elif target is not None or table is not None:
        raise TypeError("Give either one field with its target (and table) or a mapping of moves.")
    for field, to in moves.items():
        check_transition(
            table if table is not None else transitions_of(obj, field), getattr(obj, field), to, field=field
        )
    for field, to in moves.items():
        setattr(obj, field, to)
    for field, value in (changes or {}).items():
        setattr(obj, field, value)
    update = dict.fromkeys([*moves, *(changes or {}), *also])
    save_with_history(obj, actor=actor, reason=reason, update_fields=None if obj._state.adding else list(update))


def bulk_transition(
    queryset: models.QuerySet, field: str, target: str, *, changes: Mapping[str, Any] | None = None
) -> int:
    """Move every row of ``queryset`` whose current value allows ``target`` (by the model's table),
    in one UPDATE, for housekeeping jobs over many rows (no per-row history). Returns the count."""
    table = transitions_of(queryset.model, field)
    sources = [current for current, targets in table.items() if target in targets and current != target]
    return queryset.filter(**{f"{field}__in": sources}).update(**{field: target, **(changes or {})})


def _mark_history(obj: models.Model, actor: Any, reason: str, where: str) -> None:
    """What django-simple-history records with the next history row: the acting user and why."""
    check_actor(actor, where)
    if getattr(actor, "is_authenticated", False):
        obj._history_user = actor
    obj._change_reason = (reason or "")[:100]


def _save_without_history(obj: models.Model, **save_kwargs: Any) -> None:
    obj.skip_history_when_saving = True
    try:
        obj.save(**save_kwargs)
    finally:
        del obj.skip_history_when_saving


def save_with_history(
    obj: models.Model, *, actor: Any, reason: str, update_fields: Iterable[str] | None = None
) -> None:
    """Save so that django-simple-history records the acting user and the change reason."""
    _mark_history(obj, actor, reason, "save_with_history()")
    if update_fields is not None:
        fields = set(update_fields)
        if any(f.name == "updated_at" for f in obj._meta.fields):
            fields.add("updated_at")
        obj.save(update_fields=sorted(fields))
    else:
        obj.save()


def insert_without_history(obj: models.Model) -> None:
    """Insert ``obj`` without its history row, for a service that completes the new row in the same
    transaction (the ids of what it made for it) and then calls ``record_created`` once: history
    holds one creation row with the final values instead of a creation row and an update row."""
    _save_without_history(obj)


def record_created(obj: models.Model, *, actor: Any, reason: str, update_fields: Iterable[str] = ()) -> None:
    """Save the fields set since ``insert_without_history`` and write the creation's history row
    (who, why), as ``save_with_history`` would have on the insert."""
    _mark_history(obj, actor, reason, "record_created()")
    fields = list(update_fields)
    if fields:
        _save_without_history(obj, update_fields=fields)
    get_history_manager_for_model(type(obj)).bulk_history_create([obj])


def save_unique(obj: models.Model, *, actor: Any, reason: str, duplicate: DomainError) -> None:
    """Insert ``obj`` with history in a savepoint; a unique constraint that refuses it (a repeat, or a
    concurrent twin that won the race) raises ``duplicate`` and leaves the caller's transaction usable.

    The constraint is the check: no read before the write that a concurrent insert could slip past.
    """
    try:
        with transaction.atomic():
            save_with_history(obj, actor=actor, reason=reason)
    except IntegrityError as exc:
        raise duplicate from exc
