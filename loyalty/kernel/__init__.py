"""The house kernel: the shared machinery written once, which every app imports by these names.

Other apps import only what this package (and ``loyalty.kernel.api`` / ``loyalty.kernel.admin``)
exports, never a private name of ``loyalty``. See docs/architecture.md.

- Actors: ``SYSTEM`` (work nobody started by hand: beat jobs, the outbox, commands), ``Actor``,
  ``check_actor`` (``None`` is refused: every service takes ``actor`` as a required keyword).
- Checks: ``require_perm``, ``require_four_eyes``, ``require_reason``, ``check_whole_number`` /
  ``is_whole_number``; ``history_user`` / ``actor_name`` for what to record as who did it.
- Status moves: ``transition`` (the only way a status field changes: table, field, history),
  ``require_transition`` (an early check), ``may_transition``,
  ``bulk_transition`` (housekeeping over many rows), ``check_transition``, ``transitions_of``; ``save_with_history``,
  ``save_unique`` (an insert whose unique constraint turns a duplicate into a domain error),
  ``insert_without_history`` + ``record_created`` (a new row completed in the same transaction:
  one history row with its final values).
- Transactions: ``outer_service`` (``transaction.atomic(durable=True)``: an operation that starts
  the transaction, refused inside any other) and ``in_transaction`` (a building block asserting its
  caller holds one), ``own_transaction`` (one piece of a job's work), ``unit_of_work(name)`` (the
  one named exception: services inside it join its durable transaction) and ``in_unit_of_work``.
- Errors: the ``DomainError`` classes and the code registry (``register_code``, ``ERROR_CODES``); an error
  declares its code, status and detail in its class line (``class X(Conflict, code="x", detail="...")``).
- Models: ``loyalty.kernel.models`` (``choices`` tables, ``optional_ref``), imported by models modules.
"""

from loyalty.exceptions import (
    ERROR_CODES,
    AlreadyExists,
    BusinessRuleViolation,
    Conflict,
    DomainError,
    ErrorCode,
    ExceedsSpent,
    FourEyesRequired,
    InsufficientPoints,
    InvalidInput,
    InvalidTransition,
    MemberInactive,
    NotFound,
    PermissionRequired,
    TooManyAttempts,
    register_code,
)

from .actors import SYSTEM, Actor, SystemActor, check_actor, is_system
from .checks import (
    actor_name,
    check_whole_number,
    history_user,
    is_whole_number,
    require_four_eyes,
    require_perm,
    require_reason,
)
from .transactions import in_transaction, in_unit_of_work, outer_service, own_transaction, unit_of_work
from .transitions import (
    bulk_transition,
    check_transition,
    insert_without_history,
    may_transition,
    record_created,
    require_transition,
    save_unique,
    save_with_history,
    transition,
    transitions_of,
)

__all__ = [
    "ERROR_CODES",
    "SYSTEM",
    "Actor",
    "AlreadyExists",
    "BusinessRuleViolation",
    "Conflict",
    "DomainError",
    "ErrorCode",
    "ExceedsSpent",
    "FourEyesRequired",
    "InsufficientPoints",
    "InvalidInput",
    "InvalidTransition",
    "MemberInactive",
    "NotFound",
    "PermissionRequired",
    "SystemActor",
    "TooManyAttempts",
    "actor_name",
    "bulk_transition",
    "check_actor",
    "check_transition",
    "check_whole_number",
    "history_user",
    "in_transaction",
    "in_unit_of_work",
    "insert_without_history",
    "is_system",
    "is_whole_number",
    "may_transition",
    "outer_service",
    "own_transaction",
    "record_created",
    "register_code",
    "require_four_eyes",
    "require_perm",
    "require_reason",
    "require_transition",
    "save_unique",
    "save_with_history",
    "transition",
    "transitions_of",
    "unit_of_work",
]
