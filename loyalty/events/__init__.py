"""Events out: ``emit(type, obj)`` records what happened, for the feed and for webhooks.

Call ``emit`` as the last line of the service's transaction: it writes the ``Event`` (with the
object as its GET endpoint shows it, through the presenter its app registered), one
``WebhookDelivery`` per active subscription that wants the type, and for each the outbox row that
delivers it. A change that rolls back (a refusal, an error) takes all of them with it.

The base app knows no other app: promotions, redemptions and retro register presenters for their
models in their ``AppConfig.ready()`` (``register_presenter(Model, fn)``), reusing their API output
serializers, so ``data`` is exactly what their GET endpoint answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection

from .types import EVENT_TYPES, MARKETING_TEMPLATES

__all__ = ["EVENT_TYPES", "MARKETING_TEMPLATES", "emit", "emit_each", "present", "register_presenter"]

Presenter = Callable[[Any], dict]
_presenters: dict[type, Presenter] = {}


def register_presenter(model: type, presenter: Presenter) -> None:
    """How objects of ``model`` appear in events: ``presenter(obj)`` returns the GET endpoint's JSON."""
    _presenters[model] = presenter


def present(obj: Any) -> dict:
    for cls in type(obj).__mro__:
        if cls in _presenters:
            return dict(_presenters[cls](obj))
    raise LookupError(f"No event presenter registered for {type(obj).__name__}.")


def _member_of(obj: Any):
    from loyalty.models import Member

    if isinstance(obj, Member):
        return obj
    member_id = getattr(obj, "member_id", None)
    return obj.member if member_id else None


def emit(type_: str, obj: Any, *, member: Any = None, extra: dict | None = None):
    """Record event ``type_`` about ``obj`` in the current transaction and queue its webhooks.

    ``member`` defaults to ``obj.member`` (or ``obj`` itself for a member); ``data`` gets its
    ``external_id`` as ``member``. ``extra`` adds fields to ``data`` (e.g. the previous status).
    """
    from loyalty.models import Event

    from .webhooks import queue_deliveries

    if type_ not in EVENT_TYPES:
        raise ValueError(f"Unknown event type {type_!r} (add it to loyalty.events.types and API.md).")
    if not connection.in_atomic_block:
        raise RuntimeError("events.emit() belongs inside the transaction of the change it reports.")
    member = member if member is not None else _member_of(obj)
    data = present(obj)
    if extra:
        data.update(extra)
    if member is not None:
        data["member"] = member.external_id
    event = Event.objects.create(
        type=type_,
        member=member,
        object_type=type(obj)._meta.model_name if hasattr(obj, "_meta") else type(obj).__name__.lower(),
        object_id=str(getattr(obj, "pk", "") or ""),
        data=data,
    )
    queue_deliveries(event)
    return event


def emit_each(type_: str, objs: list[Any]) -> list:
    """``emit`` for each object (e.g. the expiry entries of one run), in order."""
    return [emit(type_, obj) for obj in objs]
