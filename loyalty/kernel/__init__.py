"""The house kernel: the shared machinery written once, which every app imports by these names.

Other apps import only what this package (and ``loyalty.kernel.api`` / ``loyalty.kernel.admin``)
exports, never a private name of ``loyalty``. See docs/architecture.md.
"""

from loyalty.exceptions import (
    AlreadyExists,
    BusinessRuleViolation,
    Conflict,
    DomainError,
    ExceedsSpent,
    FourEyesRequired,
    InsufficientPoints,
    InvalidInput,
    InvalidTransition,
    MemberInactive,
    NotFound,
    PermissionRequired,
    TooManyAttempts,
)
from loyalty.workflow import check_transition, save_with_history, transition

from .actors import SYSTEM, Actor, SystemActor, is_system

__all__ = [
    "SYSTEM",
    "Actor",
    "AlreadyExists",
    "BusinessRuleViolation",
    "Conflict",
    "DomainError",
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
    "check_transition",
    "is_system",
    "save_with_history",
    "transition",
]
