"""Campaigns: creating, editing and moving their status."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from loyalty.exceptions import Conflict, InvalidInput, InvalidTransition
from loyalty.kernel import (
    Actor,
    history_user,
    in_transaction,
    outer_service,
    require_perm,
    save_with_history,
    transition,
)
from loyalty.models import Metric
from promotions import codegen
from promotions.exceptions import CAMPAIGN_IN_USE
from promotions.models import Campaign

MAX_ORDER_AMOUNT = Decimal("9999999999.99")


# --- campaigns -------------------------------------------------------------------------------

CAMPAIGN_FIELDS = {
    "name",
    "description",
    "kind",
    "value",
    "metric",
    "starts_at",
    "ends_at",
    "max_redemptions",
    "max_discount_total",
    "per_member_limit",
    "min_order_amount",
    "channels",
    "stacking",
    "stack_group",
    "max_codes_per_order",
    "code_pattern",
}


def _decimal_or_error(value: Any, field: str, errors: dict[str, list[str]]) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        errors[field] = ["Must be a number."]
        return None
    if isinstance(value, bool) or not result.is_finite() or result < 0 or result > MAX_ORDER_AMOUNT:
        errors[field] = ["Out of range."]
        return None
    return result.quantize(Decimal("0.01"))


def _check_campaign(c: Campaign) -> None:
    errors: dict[str, list[str]] = {}
    for field in ("value", "max_discount_total", "min_order_amount"):
        setattr(c, field, _decimal_or_error(getattr(c, field), field, errors))
    if c.kind not in Campaign.Kind.values:
        errors["kind"] = [f"One of {Campaign.Kind.values}."]
    if c.value is None or c.value <= 0:
        errors["value"] = ["Must be greater than zero."]
    elif c.kind == Campaign.Kind.PERCENT_DISCOUNT and c.value > 100:
        errors["value"] = ["A percentage is at most 100."]
    elif c.kind == Campaign.Kind.BONUS_POINTS and c.value != c.value.to_integral_value():
        errors["value"] = ["Bonus points are whole numbers."]
    if c.kind == Campaign.Kind.BONUS_POINTS and c.metric_id is None:
        metric = Metric.objects.order_by("pk").first()
        if metric is None:
            errors["metric"] = ["Bonus points need a metric."]
        c.metric = metric
    if c.starts_at and c.ends_at and c.ends_at <= c.starts_at:
        errors["ends_at"] = ["Must be after starts_at."]
    if c.stacking not in Campaign.Stacking.values:
        errors["stacking"] = [f"One of {Campaign.Stacking.values}."]
    if not c.max_codes_per_order or c.max_codes_per_order < 1:
        errors["max_codes_per_order"] = ["At least 1."]
    if c.stacking == Campaign.Stacking.EXCLUSIVE:
        c.max_codes_per_order = 1
    if not isinstance(c.channels, list) or not all(isinstance(x, str) for x in c.channels):
        errors["channels"] = ["A list of channel names."]
    if c.max_redemptions is not None and c.max_redemptions < c.redemptions_count:
        errors["max_redemptions"] = [f"Already used {c.redemptions_count} times; the budget cannot be lower."]
    if c.max_discount_total is not None and c.max_discount_total < c.discount_total:
        errors["max_discount_total"] = [f"{c.discount_total} already given; the budget cannot be lower."]
    if c.code_pattern:
        try:
            codegen.Pattern.build(pattern=c.code_pattern)
        except codegen.PatternError as exc:
            errors["code_pattern"] = [str(exc)]
    if errors:
        raise InvalidInput("The campaign is invalid.", errors=errors)


@outer_service
def create_campaign(
    *,
    actor: Actor,
    eligible_tiers: list | None = None,
    eligible_segments: list | None = None,
    status: str | None = None,
    status_reason: str = "",
    **fields: Any,
) -> Campaign:
    """A new campaign (a draft), moved on at once to ``status`` if one is given (which needs
    ``promotions.change_campaign`` too, and follows the transition table)."""
    require_perm(actor, "promotions.add_campaign")
    unknown = set(fields) - CAMPAIGN_FIELDS
    if unknown:
        raise InvalidInput(f"Unknown fields: {sorted(unknown)}.")
    campaign = Campaign(created_by=history_user(actor), **fields)
    _check_campaign(campaign)
    save_with_history(campaign, actor=actor, reason="Created")
    if eligible_tiers:
        campaign.eligible_tiers.set(eligible_tiers)
    if eligible_segments:
        campaign.eligible_segments.set(eligible_segments)
    if status and status != campaign.status:
        campaign = change_campaign_status_in_transaction(
            campaign=campaign, status=status, actor=actor, reason=status_reason or f"Status → {status}"
        )
    return campaign


@outer_service
def update_campaign(
    *,
    campaign: Campaign,
    actor: Actor,
    eligible_tiers: list | None = None,
    eligible_segments: list | None = None,
    reason: str = "Edited",
    **fields: Any,
) -> Campaign:
    require_perm(actor, "promotions.change_campaign")
    unknown = set(fields) - CAMPAIGN_FIELDS - {"status"}
    if unknown:
        raise InvalidInput(f"Unknown fields: {sorted(unknown)}.")
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if locked.status == Campaign.Status.ENDED:
        raise InvalidTransition("An ended campaign cannot change.")
    if locked.redemptions_count and {"kind", "value"} & set(fields):
        changed = [k for k in ("kind", "value") if k in fields and fields[k] != getattr(locked, k)]
        if changed:
            raise Conflict(f"{', '.join(changed)} cannot change once codes were redeemed.", code=CAMPAIGN_IN_USE)
    status = fields.pop("status", None)
    for key, value in fields.items():
        setattr(locked, key, value)
    _check_campaign(locked)
    save_with_history(locked, actor=actor, reason=reason)
    if eligible_tiers is not None:
        locked.eligible_tiers.set(eligible_tiers)
    if eligible_segments is not None:
        locked.eligible_segments.set(eligible_segments)
    if status and status != locked.status:
        change_campaign_status_in_transaction(campaign=locked, status=status, actor=actor, reason=reason)
    return locked


def change_campaign_status_in_transaction(
    *, campaign: Campaign, status: str, actor: Actor, reason: str = ""
) -> Campaign:
    """Building block: the caller holds the transaction (``change_campaign_status`` is the outer service)."""
    in_transaction()
    require_perm(actor, "promotions.change_campaign")
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    transition(locked, "status", status, actor=actor, reason=reason or f"Status → {status}")
    return locked


@outer_service
def change_campaign_status(**kwargs: Any) -> Campaign:
    """Outer service: runs ``change_campaign_status_in_transaction`` (same arguments) in its own transaction."""
    return change_campaign_status_in_transaction(**kwargs)
