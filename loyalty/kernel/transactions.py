"""Where a transaction starts, made visible (the Zulip ``zerver/actions`` convention).

An *outer service* is an operation admin, API, tasks and commands call: it is decorated with
``@outer_service`` and starts the transaction, ``transaction.atomic(durable=True)``. Called inside
another atomic block it refuses (RuntimeError naming the service): whatever it writes commits when
it returns, never later with someone else's work. An outer service never runs inside another one
either: it calls the other's *building block* instead (``credit_points_in_transaction`` for
``credit_points``). A building block runs inside its caller's transaction: its docstring says so
and it calls ``in_transaction()`` first. A job that commits in pieces opens ``own_transaction()``
per piece, durable in the same way.

The one exception has a name: ``unit_of_work(name)``. It opens the durable transaction itself and
the outer services (and ``own_transaction()`` pieces) called directly inside it join it, as a
savepoint each, so that they commit together or not at all. Who may open one (docs/architecture.md):
the API's Idempotency-Key wrapper (the work and its stored answer commit together), ``seed_demo``
and the CSV imports (several services, one all-or-nothing transaction), and tests that mean to roll
a request back. A unit of work inside a unit of work joins it. Any other atomic block — a view's,
Django admin's change form (hence ``DurableSaveMixin``), a test's own ``atomic`` — is refused.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from django.db import connection, transaction

from .actors import check_actor

F = TypeVar("F", bound=Callable[..., Any])

_running: contextvars.ContextVar[str | None] = contextvars.ContextVar("outer_service", default=None)
# The open unit of work: its name and the atomic blocks it opened (its own, one per nested unit).
_unit: contextvars.ContextVar[tuple[str, tuple[transaction.Atomic, ...]] | None] = contextvars.ContextVar(
    "unit_of_work", default=None
)


def _innermost_is_unit() -> bool:
    unit = _unit.get()
    return unit is not None and bool(connection.atomic_blocks) and connection.atomic_blocks[-1] in unit[1]


def _start(what: str, advice: str) -> transaction.Atomic:
    """The block ``what`` opens: a savepoint of the open unit of work right around it, else durable.

    Refuses with a message that names ``what`` instead of Django's bare "A durable atomic block
    cannot be nested" (which Django would raise a moment later all the same)."""
    if _innermost_is_unit():
        return transaction.atomic()
    blocks = connection.atomic_blocks
    if blocks and not blocks[-1]._from_testcase:  # Django's TestCase blocks stand for "no transaction"
        unit = _unit.get()
        where = (
            f"an atomic block inside unit_of_work({unit[0]!r}): call it directly in the unit of work"
            if unit is not None
            else "another atomic block"
        )
        raise RuntimeError(
            f"{what} starts its own transaction (atomic(durable=True)) and was called inside {where}. "
            f"{advice} Nothing opens a transaction around it but loyalty.kernel.unit_of_work(name), "
            "for services that must commit together (see docs/architecture.md, Transactions)."
        )
    return transaction.atomic(durable=True)


def outer_service(func: F) -> F:
    """Mark ``func`` an outer service: it starts the transaction (``atomic(durable=True)``), or
    joins the ``unit_of_work`` it is called in; it refuses any other caller's transaction and an
    ``actor=None``."""
    name = f"{func.__module__}.{func.__qualname__}"

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        running = _running.get()
        if running is not None:
            raise RuntimeError(f"{name} is an outer service and was called inside {running}: call its building block.")
        if "actor" in kwargs:
            check_actor(kwargs["actor"], name)
        block = _start(
            f"{name} is an outer service: it",
            "Call it outside any transaction, or call its building block from the caller's transaction.",
        )
        token = _running.set(name)
        try:
            with block:
                return func(*args, **kwargs)
        finally:
            _running.reset(token)

    wrapper.__outer_service__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def own_transaction() -> Iterator[None]:
    """The transaction a job opens for one piece of its work (a chunk, an account): durable, or a
    savepoint of the ``unit_of_work`` it runs in (``seed_demo``'s); refused inside any other."""
    with _start("own_transaction() (one piece of a job's work)", "Run the job outside any transaction."):
        yield


@contextlib.contextmanager
def unit_of_work(name: str) -> Iterator[None]:
    """One durable transaction around several outer services that must commit together.

    ``name`` says whose it is (it appears in the refusal of a service called wrongly inside it).
    Outer services and ``own_transaction()`` called directly inside join it as savepoints; a unit of
    work inside a unit of work joins it too (a savepoint, the outer name kept). Only the callers
    named in docs/architecture.md open one: it is the exception to "a service starts its own
    transaction", not a way around it.
    """
    outer = _unit.get()
    if outer is not None and _innermost_is_unit():
        block, label = transaction.atomic(), outer[0]
    else:
        block, label = _start(f"unit_of_work({name!r})", "Open it outside any transaction."), name
    with block:  # an Atomic puts itself on connection.atomic_blocks while open
        token = _unit.set((label, (*outer[1], block) if outer is not None else (block,)))
        try:
            yield
        finally:
            _unit.reset(token)


def in_unit_of_work() -> bool:
    """Whether the code runs directly inside a ``unit_of_work`` (where outer services join it)."""
    return _innermost_is_unit()


def in_transaction() -> None:
    """Assert that the caller holds a transaction (for building blocks that lock rows)."""
    if not connection.in_atomic_block:
        raise RuntimeError("This building block runs inside its caller's transaction.")
