"""Reads remembered for the rest of one transaction (issue 18: fewer round trips per request).

A service that asks twice for the same settled row (``ProgramSettings``, the active webhook
subscriptions) asks the database once per transaction. An entry belongs to the stack of atomic blocks
it was read in — the block objects themselves, so the next transaction, or a savepoint rolled back
and opened again, reads afresh — and ``forget(key)`` (a ``post_save``/``post_delete`` receiver of the
model) drops it when this process changes the row. Only inside an outer service
(``@outer_service``) is anything remembered: code outside one (a task's loop, a test's own block)
reads every time, so a queryset ``update()`` between two of its reads is always seen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import connection

from .transactions import _running

T = TypeVar("T")

_local = threading.local()


def remembered(key: str, load: Callable[[], T]) -> T:
    """``load()``, or what it returned earlier in this transaction."""
    blocks = tuple(connection.atomic_blocks)
    if not blocks or _running.get() is None:
        return load()
    entries: dict[str, tuple[tuple, Any]] = getattr(_local, "entries", None) or {}
    _local.entries = entries
    hit = entries.get(key)
    if hit is not None and len(hit[0]) == len(blocks) and all(a is b for a, b in zip(hit[0], blocks, strict=True)):
        return hit[1]
    value = load()
    entries[key] = (blocks, value)
    return value


def forget(key: str) -> None:
    """The next ``remembered(key, ...)`` reads afresh."""
    entries = getattr(_local, "entries", None)
    if entries:
        entries.pop(key, None)


def forgetter(key: str) -> Callable[..., None]:
    """A signal receiver that forgets ``key`` (keep a reference: signals hold receivers weakly)."""

    def receiver(**_: Any) -> None:
        forget(key)

    return receiver
