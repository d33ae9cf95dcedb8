"""Program settings."""

from __future__ import annotations

from typing import Any

from loyalty.kernel import Actor, outer_service, require_perm, save_with_history

from ..exceptions import InvalidInput
from ..models import (
    ProgramSettings,
)

PROGRAM_FIELDS = {f.name for f in ProgramSettings._meta.concrete_fields if f.name not in {"id", "updated_at"}}
ROLLBACK_REASONS = {"customer_request", "technical_error", "fraud", "other"}
PROCESSING_STATUSES = {"pending", "processing", "completed", "errored"}
FULFILLMENT_STATUSES = {"none", "confirmed_paid", "shipped", "delivered", "returned_to_sender", "lost_in_transit"}


@outer_service
def update_program_settings(
    *, actor: Actor, reason: str = "Program settings changed", **fields: Any
) -> ProgramSettings:
    """Change program-wide settings (retro, rollback policy, qualification period...) with history."""
    require_perm(actor, "loyalty.change_programsettings")
    unknown = set(fields) - PROGRAM_FIELDS
    if unknown:
        raise InvalidInput(f"Unknown settings: {sorted(unknown)}.", errors={k: ["Unknown setting."] for k in unknown})
    errors: dict[str, list[str]] = {}
    for key, allowed in (
        ("rollback_approval_reasons", ROLLBACK_REASONS),
        ("rollback_statuses", PROCESSING_STATUSES),
        ("rollback_fulfillment_statuses", FULFILLMENT_STATUSES),
    ):
        if key in fields:
            value = fields[key]
            if not isinstance(value, list) or not all(isinstance(v, str) and v in allowed for v in value):
                errors[key] = [f"A list drawn from {sorted(allowed)}."]
    if "currency" in fields and not (
        isinstance(fields["currency"], str) and len(fields["currency"]) == 3 and fields["currency"].isalpha()
    ):
        errors["currency"] = ["A three-letter ISO 4217 code."]
    if errors:
        raise InvalidInput("The settings are invalid.", errors=errors)
    ProgramSettings.load()
    program = ProgramSettings.objects.select_for_update().get(pk=1)
    for key, value in fields.items():
        setattr(program, key, value.upper() if key == "currency" else value)
    save_with_history(program, actor=actor, reason=reason)
    return program
