"""Where a transaction starts, made visible (the Zulip ``zerver/actions`` convention).

An *outer service* is an operation admin, API, tasks and commands call: it is decorated with
``@outer_service`` and starts the transaction, ``transaction.atomic(durable=True)``. An outer
service never runs inside another one (RuntimeError, whatever the database state): it calls the
other's *building block* instead (``credit_points_in_transaction`` for ``credit_points``). A
building block runs inside its caller's transaction: its docstring says so and it calls
``in_transaction()`` first. A job that commits in pieces opens ``own_transaction()`` per piece.

One caller may hold a transaction around an outer service: the unit of work of a request, where
what the service writes must commit together with something else — the API's Idempotency-Key
record (``loyalty.api.base.idempotent``), Django admin's add/change form (``changeform_view``),
and a test's own ``atomic`` block. There the service joins that transaction (a savepoint)
instead of refusing; nesting outer services is refused all the same.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import connection, transaction

F = TypeVar("F", bound=Callable[..., Any])

_running: contextvars.ContextVar[str | None] = contextvars.ContextVar("outer_service", default=None)


def outer_service(func: F) -> F:
    """Mark ``func`` an outer service: it starts the transaction (``atomic(durable=True)``)."""
    name = f"{func.__module__}.{func.__qualname__}"

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        running = _running.get()
        if running is not None:
            raise RuntimeError(f"{name} is an outer service and was called inside {running}: call its building block.")
        token = _running.set(name)
        try:
            with transaction.atomic(durable=not connection.in_atomic_block):
                return func(*args, **kwargs)
        finally:
            _running.reset(token)

    wrapper.__outer_service__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def own_transaction() -> transaction.Atomic:
    """The transaction a job opens for one piece of its work (a chunk, an account): durable where
    it starts one, joining the caller's unit of work otherwise (a command's, a test's)."""
    return transaction.atomic(durable=not connection.in_atomic_block)


def in_transaction() -> None:
    """Assert that the caller holds a transaction (for building blocks that lock rows)."""
    if not connection.in_atomic_block:
        raise RuntimeError("This building block runs inside its caller's transaction.")
