"""Validation and stacking: a pure evaluator over (codes, member, order, now).

The same function answers /codes/validate and, on rows locked for update, decides /codes/redeem,
so what a customer is told and what is applied can never disagree.

Discounts apply in the order the codes are given, each on what is left of the order amount;
percentages are rounded half-up to the cent; a discount never exceeds what is left.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")

CODE_UNKNOWN = "code_unknown"
CODE_VOID = "code_void"
CODE_EXPIRED = "code_expired"
CODE_NOT_YET_VALID = "code_not_yet_valid"
CODE_ALREADY_USED = "code_already_used"
NOT_ELIGIBLE = "not_eligible"
LIMIT_REACHED = "limit_reached"
BUDGET_EXHAUSTED = "budget_exhausted"
STACKING_NOT_ALLOWED = "stacking_not_allowed"
CAMPAIGN_INACTIVE = "campaign_inactive"
REASONS = [
    CODE_UNKNOWN,
    CODE_VOID,
    CODE_EXPIRED,
    CODE_NOT_YET_VALID,
    CODE_ALREADY_USED,
    CAMPAIGN_INACTIVE,
    NOT_ELIGIBLE,
    LIMIT_REACHED,
    BUDGET_EXHAUSTED,
    STACKING_NOT_ALLOWED,
]


@dataclass(frozen=True)
class CampaignView:
    id: int
    kind: str
    value: Decimal
    status: str
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    max_redemptions: int | None = None
    redemptions_count: int = 0
    max_discount_total: Decimal | None = None
    discount_total: Decimal = Decimal(0)
    per_member_limit: int | None = None
    eligible_tiers: frozenset[str] = frozenset()
    eligible_segments: frozenset[str] = frozenset()
    min_order_amount: Decimal | None = None
    channels: tuple[str, ...] = ()
    stacking: str = "exclusive"
    stack_group: str = ""
    max_codes_per_order: int = 1


@dataclass(frozen=True)
class CodeView:
    id: int
    code: str
    status: str
    uses: int
    max_uses: int
    campaign: CampaignView
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    assigned_member_id: int | None = None


@dataclass(frozen=True)
class MemberView:
    id: int
    tier: str | None = None
    segments: frozenset[str] = frozenset()
    usage: dict[int, int] = field(default_factory=dict)  # campaign id -> uses so far


@dataclass(frozen=True)
class OrderView:
    amount: Decimal
    channel: str = ""
    id: str = ""


@dataclass
class CodeResult:
    code: str
    reason: str | None = None
    discount: Decimal = Decimal(0)
    bonus_points: int = 0
    view: CodeView | None = None

    @property
    def valid(self) -> bool:
        return self.reason is None


@dataclass
class Evaluation:
    results: list[CodeResult]

    @property
    def applicable(self) -> list[CodeResult]:
        return [r for r in self.results if r.valid]

    @property
    def discount_total(self) -> Decimal:
        return sum((r.discount for r in self.applicable), Decimal(0))

    @property
    def bonus_points(self) -> int:
        return sum(r.bonus_points for r in self.applicable)

    @property
    def all_valid(self) -> bool:
        return bool(self.results) and all(r.valid for r in self.results)


def _individual_reason(view: CodeView, member: MemberView | None, order: OrderView, now: dt.datetime) -> str | None:
    c = view.campaign
    if view.status == "void":
        return CODE_VOID
    if view.status == "expired" or (view.valid_until and now >= view.valid_until) or (c.ends_at and now >= c.ends_at):
        return CODE_EXPIRED
    if (view.valid_from and now < view.valid_from) or (c.starts_at and now < c.starts_at):
        return CODE_NOT_YET_VALID
    if c.status != "active":
        return CAMPAIGN_INACTIVE
    if view.status == "redeemed" or view.uses >= view.max_uses:
        return CODE_ALREADY_USED
    if view.assigned_member_id is not None and (member is None or member.id != view.assigned_member_id):
        return NOT_ELIGIBLE
    needs_member = c.eligible_tiers or c.eligible_segments or c.per_member_limit or c.kind == "bonus_points"
    if needs_member and member is None:
        return NOT_ELIGIBLE
    if c.eligible_tiers and member.tier not in c.eligible_tiers:
        return NOT_ELIGIBLE
    if c.eligible_segments and not (c.eligible_segments & member.segments):
        return NOT_ELIGIBLE
    if c.min_order_amount is not None and order.amount < c.min_order_amount:
        return NOT_ELIGIBLE
    if c.channels and order.channel not in c.channels:
        return NOT_ELIGIBLE
    return None


def _can_join(stack: list[CodeView], view: CodeView) -> bool:
    if not stack:
        return True
    everyone = [*stack, view]
    if any(v.campaign.stacking != "stackable" for v in everyone):
        return False
    if len({v.campaign.stack_group for v in everyone}) != 1:
        return False
    return len(everyone) <= min(v.campaign.max_codes_per_order for v in everyone)


def evaluate(
    codes: list[str], found: dict[str, CodeView], member: MemberView | None, order: OrderView, now: dt.datetime
) -> Evaluation:
    """Per code: valid, or the first reason it is not; valid codes form the stack that applies together."""
    results: list[CodeResult] = []
    stack: list[CodeView] = []
    seen: set[str] = set()
    left = order.amount
    stack_uses: dict[int, int] = {}
    stack_discount: dict[int, Decimal] = {}
    for code in codes:
        view = found.get(code)
        result = CodeResult(code=code, view=view)
        results.append(result)
        if view is None:
            result.reason = CODE_UNKNOWN
            continue
        if code in seen:
            result.reason = STACKING_NOT_ALLOWED  # the same code twice in one order
            continue
        seen.add(code)
        reason = _individual_reason(view, member, order, now)
        c = view.campaign
        in_stack = stack_uses.get(c.id, 0)
        limited = c.per_member_limit is not None and member is not None
        if reason is None and limited and member.usage.get(c.id, 0) + in_stack >= c.per_member_limit:
            reason = LIMIT_REACHED
        if reason is None and not _can_join(stack, view):
            reason = STACKING_NOT_ALLOWED
        discount, points = Decimal(0), 0
        if reason is None:
            if c.kind == "percent_discount":
                discount = min(left, (left * c.value / 100).quantize(CENT, rounding=ROUND_HALF_UP))
            elif c.kind == "fixed_discount":
                discount = min(left, c.value)
            else:
                points = int(c.value)
            uses_spent = c.max_redemptions is not None and c.redemptions_count + in_stack >= c.max_redemptions
            given = c.discount_total + stack_discount.get(c.id, Decimal(0)) + discount
            money_spent = c.max_discount_total is not None and given > c.max_discount_total
            if uses_spent or money_spent:
                reason = BUDGET_EXHAUSTED
        if reason is not None:
            result.reason = reason
            continue
        result.discount, result.bonus_points = discount, points
        left -= discount
        stack.append(view)
        stack_uses[c.id] = in_stack + 1
        stack_discount[c.id] = stack_discount.get(c.id, Decimal(0)) + discount
    return Evaluation(results=results)
