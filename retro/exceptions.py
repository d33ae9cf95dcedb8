"""Error codes of the retro app (part of the API contract)."""

from loyalty.exceptions import register_code

ALREADY_CLAIMED = register_code("already_claimed", 409, "Retro claim for a bill with a member or a live claim.")
RETRO_DISABLED = register_code("retro_disabled", 422, "Retro claims are switched off.")
RETRO_WINDOW_CLOSED = register_code("retro_window_closed", 422, "Purchase older than retro_window_days.")
BEFORE_ENROLMENT = register_code("before_enrolment", 422, "Purchase before the member enrolled (minus the buffer).")
LIMIT_REACHED = register_code("limit_reached", 422, "Too many retro claims in 30 days.")
