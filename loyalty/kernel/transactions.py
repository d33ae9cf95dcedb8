"""Where a transaction starts, made visible (the Zulip ``zerver/actions`` convention).

An *outer service* is an operation admin, API, tasks and commands call: it is decorated with
``@outer_service`` (``transaction.atomic(durable=True)``), so it always starts the transaction and
it is an error (RuntimeError) to call it inside another one. A *building block* runs inside its
caller's transaction: its docstring says so and it may call ``in_transaction()`` first. An outer
service that needs another one's work calls that one's building block, never the outer service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import connection, transaction

F = TypeVar("F", bound=Callable)


def outer_service(func: F) -> F:
    """``@transaction.atomic(durable=True)``: this operation starts (and commits) the transaction."""
    wrapped = transaction.atomic(durable=True)(func)
    wrapped.__outer_service__ = True
    return wrapped


def in_transaction() -> None:
    """Assert that the caller holds a transaction (for building blocks that lock rows)."""
    if not connection.in_atomic_block:
        raise RuntimeError("This building block runs inside its caller's transaction.")
