"""Errors of the redemptions app (their codes are part of the API contract)."""

from loyalty.exceptions import BusinessRuleViolation, Conflict


class OutOfStock(Conflict):
    code = "out_of_stock"
    default_detail = "The reward is out of stock."


class RollbackWindowClosed(BusinessRuleViolation):
    code = "rollback_window_closed"
    default_detail = "The rollback window for this redemption has closed."


class RollbackPending(Conflict):
    code = "rollback_pending"
    default_detail = "A rollback of this redemption is waiting for approval; decide it first."


class RollbackApprovalRequired(BusinessRuleViolation):
    code = "rollback_approval_required"
    default_detail = "Giving this back needs a second person: request a rollback so that an approver decides."
