"""Errors of the redemptions app (their codes are part of the API contract)."""

from loyalty.exceptions import BusinessRuleViolation, Conflict, register_code


class OutOfStock(Conflict, code="out_of_stock", detail="The reward is out of stock."): ...


class RollbackWindowClosed(
    BusinessRuleViolation, code="rollback_window_closed", detail="The rollback window for this redemption has closed."
): ...


class RollbackPending(
    Conflict,
    code="rollback_pending",
    detail="A rollback of this redemption is waiting for approval; decide it first.",
): ...


class RollbackApprovalRequired(
    BusinessRuleViolation,
    code="rollback_approval_required",
    detail="Giving this back needs a second person: request a rollback so that an approver decides.",
): ...


REWARD_UNAVAILABLE = register_code("reward_unavailable", 422, "Reward inactive or outside its window.")
NOT_ELIGIBLE = register_code(
    "not_eligible", 422, "Reward not for the member's tier, or a previous redemption of it was rejected."
)
REWARD_MISCONFIGURED = register_code("reward_misconfigured", 409, "Discount-code reward without a campaign.")
POOL_EXHAUSTED = register_code("pool_exhausted", 409, "No free code can be made for a discount-code reward.")
CODE_ALREADY_USED = register_code(
    "code_already_used", 409, "Giving points back for a redemption whose issued code's use stands."
)
PARTIAL_NOT_ALLOWED = register_code("partial_not_allowed", 422, "Partial rollback while the policy forbids it.")
