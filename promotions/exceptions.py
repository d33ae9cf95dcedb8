"""Errors of the promotions app (their codes are part of the API contract)."""

from loyalty.exceptions import BusinessRuleViolation, register_code


class CodesRejected(
    BusinessRuleViolation, code="codes_rejected", detail="Not every code can be applied; nothing was redeemed."
): ...


CAMPAIGN_INACTIVE = register_code("campaign_inactive", 409, "Generating codes for an ended campaign.")
CAMPAIGN_IN_USE = register_code("campaign_in_use", 409, "Changing campaign terms after codes were redeemed.")
