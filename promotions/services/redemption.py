"""Validating and redeeming codes, and rolling a redemption back."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from loyalty import events
from loyalty.exceptions import InvalidInput
from loyalty.kernel import (
    Actor,
    history_user,
    outer_service,
    own_transaction,
    require_perm,
    require_reason,
    require_transition,
    save_with_history,
    transition,
)
from loyalty.models import LedgerEntry, Member
from loyalty.services import credit_points_in_transaction, debit_points_in_transaction, lock_balances
from promotions import abuse, codegen
from promotions.engine import BUDGET_EXHAUSTED, Evaluation, OrderView, evaluate
from promotions.exceptions import CodesRejected
from promotions.models import Campaign, CampaignMemberUsage, Code, CodeEvent, CodeRedemption
from promotions.selectors import code_views, member_view

from .campaigns import MAX_ORDER_AMOUNT
from .codes import record_code_event

MAX_CODES_PER_REQUEST = 20


@dataclass
class CodeRequest:
    """A cleaned /codes/validate or /codes/redeem request."""

    codes: list[str]
    member: Member | None
    order: OrderView
    client: str = ""
    ip: str | None = None


def clean_request(
    *, codes: Any, member: Member | None, order: dict[str, Any] | None, client: str = "", ip: str | None = None
) -> CodeRequest:
    """No transaction: it writes nothing."""
    if not isinstance(codes, list) or not codes:
        raise InvalidInput("Give a list of codes.", errors={"codes": ["A non-empty list of strings."]})
    if len(codes) > MAX_CODES_PER_REQUEST:
        raise InvalidInput(
            f"At most {MAX_CODES_PER_REQUEST} codes per order.", errors={"codes": [f"At most {MAX_CODES_PER_REQUEST}."]}
        )
    if not all(isinstance(c, str) and 0 < len(c) <= codegen.MAX_CODE_LENGTH for c in codes):
        raise InvalidInput("Codes are strings of 1 to 64 characters.", errors={"codes": ["Strings only."]})
    order = order or {}
    if not isinstance(order, dict):
        raise InvalidInput("order must be an object.", errors={"order": ["An object."]})
    try:
        amount = Decimal(str(order.get("amount", "0")))
    except (InvalidOperation, ValueError):
        raise InvalidInput("order.amount must be a number.", errors={"order": ["amount must be a number."]}) from None
    if isinstance(order.get("amount"), bool) or not amount.is_finite() or amount < 0 or amount > MAX_ORDER_AMOUNT:
        raise InvalidInput("order.amount is out of range.", errors={"order": ["amount must be 0 or more."]})
    channel = order.get("channel") or ""
    order_id = order.get("id") or ""
    if not isinstance(channel, str) or not isinstance(order_id, str | int) or len(str(order_id)) > 64:
        raise InvalidInput("order.channel and order.id are strings.", errors={"order": ["Invalid fields."]})
    return CodeRequest(
        codes=[codegen.normalize(c) for c in codes],
        member=member,
        order=OrderView(amount=amount.quantize(Decimal("0.01")), channel=channel, id=str(order_id)),
        client=client,
        ip=ip,
    )


def _record_attempts(req: CodeRequest, evaluation: Evaluation, actor: Actor, *, redeem: bool) -> None:
    CodeEvent.objects.bulk_create(
        [
            CodeEvent(
                code_id=r.view.id if r.view is not None else None,
                code_text=r.code,
                kind=CodeEvent.Kind.VALIDATED,
                result=r.reason or "valid",
                member=req.member,
                actor=history_user(actor),
                client=req.client,
                ip=req.ip,
                order_id=req.order.id,
                detail={"redeem": redeem} if redeem else {},
            )
            for r in evaluation.results
        ]
    )
    failed = [
        r.code
        for r in evaluation.results
        if r.reason in ("code_unknown", "code_void", "code_expired", "code_already_used")
    ]
    abuse.record_failures(
        client=req.client, ip=req.ip, member_id=req.member.pk if req.member else None, failed=len(failed), codes=failed
    )


def _evaluate(req: CodeRequest, codes: list[Code]) -> Evaluation:
    views = code_views(codes)
    member = member_view(req.member, [c.campaign_id for c in codes])
    return evaluate(req.codes, views, member, req.order, timezone.now())


def validate_codes(req: CodeRequest, *, actor: Actor) -> Evaluation:
    """Answer which codes apply, changing nothing but the timeline and the abuse counters.

    Runs its own transactions: one for the attempts (one WAL flush, not one per statement).
    """
    require_perm(actor, "promotions.view_code")
    abuse.check_not_locked(client=req.client, ip=req.ip)
    with own_transaction():
        codes = list(Code.objects.filter(normalized__in=req.codes).select_related("campaign"))
        evaluation = _evaluate(req, codes)
        _record_attempts(req, evaluation, actor, redeem=False)
    return evaluation


class _CampaignMoved(Exception):
    """A campaign (or a member's usage row) changed between the read and its conditional UPDATE."""


def redeem_codes(req: CodeRequest, *, actor: Actor) -> list[CodeRedemption]:
    """Apply the whole stack atomically, or nothing.

    Locks, in order: the member's balance rows (bonus points), the codes by id, the member's usage
    rows, the campaign rows (the rollback takes them in the same order). The campaign row is not
    locked up front (every redemption of a campaign queued on it, issue 18): its counters move by
    one conditional UPDATE per campaign, the last statement before the commit (``used + n <=
    quota``, ``given + discount <= budget``, ``updated_at`` unchanged: not edited since it was
    read), and the usage row by ``uses < per_member_limit``. If one matches no row, the attempt is
    rolled back and done once more with the usage and campaign rows locked before evaluating, so
    the answer (e.g. ``budget_exhausted``, ``limit_reached``) is exact.

    Runs its own transactions: one durable transaction per attempt; refused attempts are recorded after it.
    """
    require_perm(actor, "promotions.add_coderedemption")
    member_id = req.member.pk if req.member else None
    abuse.check_not_locked(client=req.client, ip=req.ip)
    evaluated: list[Evaluation] = []
    try:
        try:
            created = _redeem(req, actor, evaluated, lock_campaigns=False)
        except _CampaignMoved:
            created = _redeem(req, actor, evaluated, lock_campaigns=True)
    except CodesRejected:
        if evaluated:
            _record_attempts(req, evaluated[-1], actor, redeem=True)
        raise
    abuse.record_redemption(member_id=member_id, codes=req.codes)
    return created


def _rejected(evaluation: Evaluation) -> CodesRejected:
    return CodesRejected(
        errors={"codes": [{"code": r.code, "valid": r.valid, "reason": r.reason} for r in evaluation.results]}
    )


def _lock_codes(req: CodeRequest) -> list[Code]:
    """The request's codes locked (with their campaigns read in the same query), after the member's
    bonus balances and usage rows exist / are locked in the house order."""
    locking = Code.objects.select_for_update(of=("self",)).select_related("campaign__metric").order_by("pk")
    if req.member is None:  # no balance to lock first: one query
        return list(locking.filter(normalized__in=req.codes))
    preview = list(Code.objects.filter(normalized__in=req.codes).select_related("campaign__metric"))
    campaign_ids = sorted({c.campaign_id for c in preview})
    CampaignMemberUsage.objects.bulk_create(
        [CampaignMemberUsage(campaign_id=cid, member=req.member) for cid in campaign_ids], ignore_conflicts=True
    )
    bonus_metrics = {
        c.campaign.metric for c in preview if c.campaign.kind == Campaign.Kind.BONUS_POINTS and c.campaign.metric_id
    }
    if bonus_metrics:
        lock_balances(req.member, bonus_metrics)
    return list(locking.filter(pk__in=[c.pk for c in preview]))


def _redeem(
    req: CodeRequest, actor: Actor, evaluated: list[Evaluation], *, lock_campaigns: bool
) -> list[CodeRedemption]:
    with own_transaction():
        codes = _lock_codes(req)
        campaigns = {c.campaign_id: c.campaign for c in codes}
        if lock_campaigns:  # the house order: usage rows before campaign rows, as below
            if req.member is not None:
                list(
                    CampaignMemberUsage.objects.select_for_update()
                    .filter(campaign_id__in=sorted(campaigns), member=req.member)
                    .order_by("campaign_id")
                )
            campaigns = {
                c.pk: c
                for c in Campaign.objects.select_for_update(of=("self",))
                .select_related("metric")
                .filter(pk__in=sorted(campaigns))
                .order_by("pk")
            }
            for code in codes:
                code.campaign = campaigns[code.campaign_id]
        evaluation = _evaluate(req, codes)
        evaluated.append(evaluation)
        if not evaluation.all_valid:
            raise _rejected(evaluation)
        by_norm = {c.normalized: c for c in codes}
        now = timezone.now()
        created = []
        code_events = []
        for result in evaluation.results:
            code = by_norm[result.code]
            campaign = campaigns[code.campaign_id]
            Code.objects.filter(pk=code.pk).update(uses=F("uses") + 1, updated_at=now)
            code.uses, code.updated_at = code.uses + 1, now  # as written (locked), for the history row
            if code.uses >= code.max_uses:
                transition(code, "status", Code.Status.REDEEMED, actor=actor, reason="Redeemed")
            if req.member is not None:
                usage = CampaignMemberUsage.objects.filter(campaign=campaign, member=req.member)
                if campaign.per_member_limit is not None:
                    usage = usage.filter(uses__lt=campaign.per_member_limit)
                if not usage.update(uses=F("uses") + 1):
                    _moved(evaluation, result, lock_campaigns)
            redemption = CodeRedemption(
                code=code,
                campaign=campaign,
                member=req.member,
                order_id=req.order.id,
                order_amount=req.order.amount,
                channel=req.order.channel,
                discount=result.discount,
                bonus_points=result.bonus_points,
                redeemed_by=history_user(actor),
            )
            save_with_history(redemption, actor=actor, reason="Redeemed")
            if result.bonus_points and req.member is not None:
                redemption.ledger_entry = credit_points_in_transaction(
                    member=req.member,
                    metric=campaign.metric,
                    amount=result.bonus_points,
                    actor=actor,
                    reason=f"Bonus code {code.code}",
                    source_type="code_redemption",
                    source_id=str(redemption.pk),
                    idempotency_key=f"code_redemption:{redemption.pk}",
                )
                redemption.save(update_fields=["ledger_entry"])
            code_events.append(
                CodeEvent(
                    code=code,
                    code_text=code.normalized,
                    kind=CodeEvent.Kind.REDEEMED,
                    result="valid",
                    member=req.member,
                    actor=history_user(actor),
                    client=req.client,
                    ip=req.ip,
                    order_id=req.order.id,
                    detail={
                        "discount": str(result.discount),
                        "bonus_points": result.bonus_points,
                        "redemption": redemption.pk,
                    },
                )
            )
            created.append(redemption)
        CodeEvent.objects.bulk_create(code_events)
        events.emit_each("code.redeemed", created)
        # Last, so that the campaign row (shared by every redemption of the campaign) is held
        # from here to the commit only.
        _count_on_campaigns(evaluation, by_norm, campaigns, lock_campaigns)
    return created


def _moved(evaluation: Evaluation, result: Any, locked: bool) -> None:
    if not locked:
        raise _CampaignMoved()
    result.reason = BUDGET_EXHAUSTED  # cannot happen under the locks; a clean 422, never a 500
    raise _rejected(evaluation)


def _count_on_campaigns(
    evaluation: Evaluation, by_norm: dict[str, Code], campaigns: dict[int, Campaign], locked: bool
) -> None:
    """One conditional UPDATE per campaign: the budget holds and the campaign is as evaluated."""
    per_campaign: dict[int, list] = {}
    for result in evaluation.results:
        per_campaign.setdefault(by_norm[result.code].campaign_id, []).append(result)
    for campaign_id in sorted(per_campaign):
        results = per_campaign[campaign_id]
        n = len(results)
        discount = sum((r.discount for r in results), Decimal(0))
        points = sum(r.bonus_points for r in results)
        counted = (
            Campaign.objects.filter(pk=campaign_id, updated_at=campaigns[campaign_id].updated_at)
            .filter(Q(max_redemptions__isnull=True) | Q(redemptions_count__lte=F("max_redemptions") - n))
            .filter(Q(max_discount_total__isnull=True) | Q(discount_total__lte=F("max_discount_total") - discount))
            .update(
                redemptions_count=F("redemptions_count") + n,
                discount_total=F("discount_total") + discount,
                bonus_points_total=F("bonus_points_total") + points,
            )
        )
        if not counted:
            _moved(evaluation, results[-1], locked)


@outer_service
def rollback_code_redemption(*, redemption: CodeRedemption, actor: Actor, reason: str) -> CodeRedemption:
    """Reverse one code use: counters go back, bonus points are taken back, and the code is usable
    again where its limits allow (not if it was voided or has expired)."""
    require_perm(actor, "promotions.change_coderedemption")
    require_reason(reason)
    current = CodeRedemption.objects.select_related("campaign__metric", "member").get(pk=redemption.pk)
    if current.bonus_points and current.member_id:
        lock_balances(current.member, [current.campaign.metric])
    use = CodeRedemption.objects.select_for_update().get(pk=redemption.pk)
    require_transition(use, "status", CodeRedemption.Status.ROLLED_BACK)
    code = Code.objects.select_for_update().get(pk=use.code_id)
    if use.member_id:  # the house order: usage row, then campaign row (as redeem_codes)
        CampaignMemberUsage.objects.filter(campaign_id=use.campaign_id, member_id=use.member_id).update(
            uses=F("uses") - 1
        )
    Campaign.objects.select_for_update().filter(pk=use.campaign_id).first()
    if use.bonus_points and use.ledger_entry_id:
        debit_points_in_transaction(
            member=current.member,
            metric=current.campaign.metric,
            amount=use.bonus_points,
            kind=LedgerEntry.Kind.ROLLBACK,
            actor=actor,
            reason=f"Code use rolled back: {reason}",
            source_type="code_redemption",
            source_id=str(use.pk),
            reverses=use.ledger_entry,
            idempotency_key=f"code_redemption_rollback:{use.pk}",
        )
    Code.objects.filter(pk=code.pk).update(uses=F("uses") - 1, updated_at=timezone.now())
    if code.status == Code.Status.REDEEMED:
        transition(code, "status", Code.Status.ACTIVE, actor=actor, reason=f"Use rolled back: {reason}")
    Campaign.objects.filter(pk=use.campaign_id).update(
        redemptions_count=F("redemptions_count") - 1,
        discount_total=F("discount_total") - use.discount,
        bonus_points_total=F("bonus_points_total") - use.bonus_points,
    )
    transition(
        use,
        "status",
        CodeRedemption.Status.ROLLED_BACK,
        actor=actor,
        reason=f"Rolled back: {reason}",
        changes={
            "rolled_back_at": timezone.now(),
            "rolled_back_by": history_user(actor),
            "rollback_reason": reason.strip()[:255],
        },
    )
    record_code_event(
        code,
        CodeEvent.Kind.ROLLED_BACK,
        actor=actor,
        member=use.member,
        order_id=use.order_id,
        detail={"reason": reason, "redemption": use.pk},
    )
    return use


# --- housekeeping ------------------------------------------------------------------------------
