"""Domain errors with stable, machine-readable codes.

Services raise these; the API turns them into ``{"code", "detail", "errors"}`` with the status
below, and the admin shows ``detail`` as a message. Codes are a contract with integrations:
never rename one.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code: str = "domain_error"
    status: int = 422
    default_detail: str = "The operation is not allowed."

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


class InvalidInput(DomainError):
    """Malformed or invalid input caught by a service (400)."""

    code = "invalid"
    status = 400
    default_detail = "The input is invalid."


class NotFound(DomainError):
    code = "not_found"
    status = 404
    default_detail = "Not found."


class PermissionRequired(DomainError):
    code = "permission_denied"
    status = 403
    default_detail = "You do not have permission to perform this action."


class Conflict(DomainError):
    """The current state forbids the operation (409)."""

    code = "conflict"
    status = 409
    default_detail = "The operation conflicts with the current state."


class AlreadyExists(Conflict):
    code = "already_exists"
    default_detail = "An object with this identifier already exists."


class InvalidTransition(Conflict):
    code = "invalid_transition"
    default_detail = "This status change is not allowed."


class InsufficientPoints(Conflict):
    code = "insufficient_points"
    default_detail = "The member does not have enough points."


class BusinessRuleViolation(DomainError):
    """A business rule said no (422)."""

    code = "rule_violation"
    status = 422


class FourEyesRequired(BusinessRuleViolation):
    code = "four_eyes_required"
    default_detail = "A second person must approve this; you cannot approve your own request."


class MemberInactive(BusinessRuleViolation):
    code = "member_inactive"
    default_detail = "The member is not active."


class TooManyAttempts(DomainError):
    code = "too_many_attempts"
    status = 429
    default_detail = "Too many failed attempts; try again later."


class ExceedsSpent(Conflict):
    code = "exceeds_spent"
    default_detail = "That is more than was spent."


class ApiKeyRejected(DomainError):
    """The key is unknown, revoked or expired, or its owner is inactive (401)."""

    code = "authentication_failed"
    status = 401
    default_detail = "Invalid API key."
