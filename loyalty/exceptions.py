"""Domain errors with stable, machine-readable codes.

Services raise these; the API turns them into ``{"code", "detail", "errors"}`` with the status
below, and the admin shows ``detail`` as a message. Codes are a contract with integrations:
never rename one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    meaning: str


# Every code a service may raise, registered where it is defined: the classes below (and every
# subclass, automatically) and the ``register_code`` constants in each app's ``exceptions.py``.
# tests/test_kernel.py checks that no raise site uses an unregistered code and that docs/api.md
# lists every one.
ERROR_CODES: dict[str, ErrorCode] = {}


def register_code(code: str, status: int, meaning: str) -> str:
    """Register a stable error code (raised as ``SomeError(..., code=CONSTANT)``); returns it."""
    known = ERROR_CODES.get(code)
    if known is not None and known.status != status:
        raise ValueError(f"Error code {code!r} is already registered with status {known.status}.")
    ERROR_CODES.setdefault(code, ErrorCode(code, status, meaning))
    return code


class DomainError(Exception):
    """The base of every domain error. A subclass declares what it is in its class line:
    ``class NotFound(DomainError, code="not_found", status=404, detail="Not found.")``; ``status``
    is inherited when not given. Every declared code is registered, its docstring (or detail) as its meaning.
    """

    code: str = "domain_error"
    status: int = 422
    default_detail: str = "The operation is not allowed."

    def __init_subclass__(
        cls, *, code: str | None = None, status: int | None = None, detail: str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if detail is not None:
            cls.default_detail = detail
        if code is not None:
            cls.code = code
        if "code" in cls.__dict__:
            register_code(cls.code, cls.status, (cls.__doc__ or cls.default_detail).strip())

    def __init__(
        self, detail: str | None = None, *, code: str | None = None, errors: dict[str, Any] | None = None
    ) -> None:
        self.detail = detail or self.default_detail
        if code:
            self.code = code
        self.errors = errors or {}
        super().__init__(self.detail)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.detail, "errors": self.errors}


class InvalidInput(DomainError, code="invalid", status=400, detail="The input is invalid."):
    """Malformed or invalid input caught by a service (400)."""


class NotFound(DomainError, code="not_found", status=404, detail="Not found."): ...


class PermissionRequired(
    DomainError, code="permission_denied", status=403, detail="You do not have permission to perform this action."
): ...


class Conflict(DomainError, code="conflict", status=409, detail="The operation conflicts with the current state."):
    """The current state forbids the operation (409)."""


class AlreadyExists(Conflict, code="already_exists", detail="An object with this identifier already exists."): ...


class InvalidTransition(Conflict, code="invalid_transition", detail="This status change is not allowed."): ...


class InsufficientPoints(Conflict, code="insufficient_points", detail="The member does not have enough points."): ...


class BusinessRuleViolation(DomainError, code="rule_violation", status=422):
    """A business rule said no (422)."""


class FourEyesRequired(
    BusinessRuleViolation,
    code="four_eyes_required",
    detail="A second person must approve this; you cannot approve your own request.",
): ...


class MemberInactive(BusinessRuleViolation, code="member_inactive", detail="The member is not active."): ...


class TooManyAttempts(
    DomainError, code="too_many_attempts", status=429, detail="Too many failed attempts; try again later."
): ...


class ExceedsSpent(Conflict, code="exceeds_spent", detail="That is more than was spent."): ...


class ApiKeyRejected(DomainError, code="authentication_failed", status=401, detail="Invalid API key."):
    """The key is unknown, revoked or expired, or its owner is inactive (401)."""


register_code(DomainError.code, DomainError.status, DomainError.default_detail)

# Codes raised with a base class above (``Conflict(..., code=X)``), owned by the loyalty app.
ALREADY_IN_TIER = register_code("already_in_tier", 409, "Manual tier change to the current tier.")
TIER_HISTORY_CONFLICT = register_code("tier_history_conflict", 409, "The open tier interval starts in the future.")
TIER_HISTORY_OVERLAP = register_code("tier_history_overlap", 409, "Tier history would overlap.")
RULE_SET_PUBLISHED = register_code("rule_set_published", 409, "Editing a published or retired rule set.")
RULE_SET_OVERLAP = register_code("rule_set_overlap", 409, "Publishing would overlap another published set.")
RULE_SET_REWRITES_PAST = register_code(
    "rule_set_rewrites_past", 422, "A new version would close its predecessor in the past."
)
ALREADY_RETURNED = register_code("already_returned", 409, "The bill is already fully returned.")
RETURN_EXCEEDS_AMOUNT = register_code("return_exceeds_amount", 409, "Return larger than what is left of the bill.")
LEDGER_INCONSISTENT = register_code("ledger_inconsistent", 409, "Cached balance and lots disagree.")
