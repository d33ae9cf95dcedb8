"""Errors of the promotions app (their codes are part of the API contract)."""

from loyalty.exceptions import BusinessRuleViolation


class CodesRejected(BusinessRuleViolation):
    code = "codes_rejected"
    default_detail = "Not every code can be applied; nothing was redeemed."
