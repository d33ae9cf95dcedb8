"""Every state change of campaigns and codes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from loyalty import outbox
from loyalty.exceptions import AlreadyExists, BusinessRuleViolation, Conflict, InvalidInput
from loyalty.models import LedgerEntry, Member, Metric
from loyalty.notifications import notify_member
from loyalty.services import credit_points, debit_points, lock_balances
from loyalty.services.core import User, _require_perm, _user_or_none
from loyalty.workflow import check_transition, save_with_history

from . import abuse, codegen
from .engine import Evaluation, OrderView, evaluate
from .models import AbuseSignal, Campaign, CampaignMemberUsage, Code, CodeBatch, CodeEvent, CodeRedemption
from .selectors import code_views, member_view

MAX_CODES_PER_REQUEST = 20
MAX_ORDER_AMOUNT = Decimal("9999999999.99")
GENERATION_CHUNK = 20_000


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


@transaction.atomic
def create_campaign(
    *, actor: User, eligible_tiers: list | None = None, eligible_segments: list | None = None, **fields: Any
) -> Campaign:
    _require_perm(actor, "promotions.add_campaign")
    unknown = set(fields) - CAMPAIGN_FIELDS
    if unknown:
        raise InvalidInput(f"Unknown fields: {sorted(unknown)}.")
    campaign = Campaign(created_by=_user_or_none(actor), **fields)
    _check_campaign(campaign)
    save_with_history(campaign, actor=actor, reason="Created")
    if eligible_tiers:
        campaign.eligible_tiers.set(eligible_tiers)
    if eligible_segments:
        campaign.eligible_segments.set(eligible_segments)
    return campaign


@transaction.atomic
def update_campaign(
    *,
    campaign: Campaign,
    actor: User,
    eligible_tiers: list | None = None,
    eligible_segments: list | None = None,
    reason: str = "Edited",
    **fields: Any,
) -> Campaign:
    _require_perm(actor, "promotions.change_campaign")
    unknown = set(fields) - CAMPAIGN_FIELDS - {"status"}
    if unknown:
        raise InvalidInput(f"Unknown fields: {sorted(unknown)}.")
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if locked.status == Campaign.Status.ENDED:
        raise Conflict("An ended campaign cannot change.", code="invalid_transition")
    if locked.redemptions_count and {"kind", "value"} & set(fields):
        changed = [k for k in ("kind", "value") if k in fields and fields[k] != getattr(locked, k)]
        if changed:
            raise Conflict(f"{', '.join(changed)} cannot change once codes were redeemed.", code="campaign_in_use")
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
        change_campaign_status(campaign=locked, status=status, actor=actor, reason=reason)
    return locked


@transaction.atomic
def change_campaign_status(*, campaign: Campaign, status: str, actor: User, reason: str = "") -> Campaign:
    _require_perm(actor, "promotions.change_campaign")
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    check_transition(Campaign.STATUS_TRANSITIONS, locked.status, status, field="status")
    locked.status = status
    save_with_history(locked, actor=actor, reason=reason or f"Status → {status}", update_fields=["status"])
    return locked


# --- code batches ----------------------------------------------------------------------------


@transaction.atomic
def create_code_batch(
    *,
    campaign: Campaign,
    actor: User,
    count: int | None = None,
    pattern: str = "",
    prefix: str = "",
    suffix: str = "",
    length: int | None = None,
    charset: str = "",
    max_uses: int = 1,
    release_at: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
    segment=None,
    email_members: bool = False,
) -> CodeBatch:
    """Queue the generation of ``count`` codes (or one per member of ``segment``) as chunked Celery work."""
    _require_perm(actor, "promotions.generate_codes")
    if campaign.status == Campaign.Status.ENDED:
        raise Conflict("The campaign has ended.", code="campaign_inactive")
    if segment is not None:
        count = segment.members.count()
        if count == 0:
            raise InvalidInput("The segment has no members.", errors={"segment": ["Empty segment."]})
    limit = settings.CODE_BATCH_MAX_COUNT
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= limit:
        raise InvalidInput(f"count must be between 1 and {limit}.", errors={"count": [f"Between 1 and {limit}."]})
    if isinstance(max_uses, bool) or not isinstance(max_uses, int) or not 1 <= max_uses <= 1_000_000:
        raise InvalidInput("max_uses must be at least 1.", errors={"max_uses": ["At least 1."]})
    if release_at and valid_until and valid_until <= release_at:
        raise InvalidInput("valid_until must be after release_at.", errors={"valid_until": ["After release_at."]})
    if not (pattern or length):
        pattern = campaign.code_pattern or ""
        length = None if pattern else 10
    try:
        built = codegen.Pattern.build(pattern=pattern, prefix=prefix, suffix=suffix, length=length, charset=charset)
        existing = sum(
            CodeBatch.objects.filter(pattern=built.text, charset=built.charset).values_list("count", flat=True)
        )
        built.check_capacity(count, existing)
    except codegen.PatternError as exc:
        raise InvalidInput(str(exc), errors={"pattern": [str(exc)]}) from None
    batch = CodeBatch(
        campaign=campaign,
        count=count,
        pattern=built.text,
        charset=built.charset,
        max_uses=max_uses,
        release_at=release_at,
        valid_until=valid_until,
        segment=segment,
        email_members=email_members,
        created_by=_user_or_none(actor),
    )
    save_with_history(batch, actor=actor, reason="Generation requested")
    from .tasks import generate_code_batch

    outbox.enqueue_on_commit(generate_code_batch, batch.pk)
    return batch


def _insert_codes(batch: CodeBatch, rows: list[tuple[str, str, int | None]]) -> int:
    """Insert, skipping codes that already exist anywhere (the unique index decides). Returns rows inserted.

    On PostgreSQL a chunk is first COPied straight into the table (collisions are astronomically rare
    in a pattern that passed the capacity check); if one collides, the chunk goes through a temp table
    and INSERT ... ON CONFLICT DO NOTHING instead.
    """
    if connection.vendor == "postgresql":
        columns = (
            "campaign_id, batch_id, code, normalized, status, uses, max_uses, assigned_member_id,"
            " valid_from, valid_until, created_at, updated_at"
        )
        now = timezone.now()
        fixed = (batch.campaign_id, batch.pk)
        tail = ("active", 0, batch.max_uses)
        window = (batch.release_at, batch.valid_until, now, now)
        try:
            with transaction.atomic(), connection.cursor() as cur:
                with cur.cursor.copy(f"COPY promotions_code ({columns}) FROM STDIN") as copy:
                    for code, normalized, member in rows:
                        copy.write_row((*fixed, code, normalized, *tail, member, *window))
                return len(rows)
        except IntegrityError:
            pass  # a collision: fall back to the conflict-skipping path for this chunk
        with connection.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS promotions_new_codes "
                "(code varchar(64), normalized varchar(64), member_id bigint) ON COMMIT DELETE ROWS"
            )
            with cur.cursor.copy("COPY promotions_new_codes (code, normalized, member_id) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO promotions_code ({columns})"
                " SELECT %s, %s, code, normalized, 'active', 0, %s, member_id, %s, %s, now(), now()"
                " FROM promotions_new_codes ON CONFLICT (normalized) DO NOTHING",
                [batch.campaign_id, batch.pk, batch.max_uses, batch.release_at, batch.valid_until],
            )
            inserted = cur.rowcount
            cur.execute("TRUNCATE promotions_new_codes")
            return inserted
    before = Code.objects.filter(batch=batch).count()
    Code.objects.bulk_create(
        [
            Code(
                campaign_id=batch.campaign_id,
                batch=batch,
                code=c,
                normalized=n,
                max_uses=batch.max_uses,
                assigned_member_id=m,
                valid_from=batch.release_at,
                valid_until=batch.valid_until,
            )
            for c, n, m in rows
        ],
        ignore_conflicts=True,
        batch_size=2000,
    )
    return Code.objects.filter(batch=batch).count() - before


def generate_code_batch(*, batch_id: int, chunk_size: int = GENERATION_CHUNK) -> CodeBatch:
    """Generate a batch chunk by chunk; each chunk commits with its progress, so a crash resumes."""
    with transaction.atomic():
        batch = CodeBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status == CodeBatch.Status.COMPLETED:
            return batch
        if batch.status != CodeBatch.Status.RUNNING:
            check_transition(CodeBatch.STATUS_TRANSITIONS, batch.status, CodeBatch.Status.RUNNING, field="status")
            batch.status = CodeBatch.Status.RUNNING
            batch.error = ""
            save_with_history(batch, actor=None, reason="Generation started", update_fields=["status", "error"])
    pattern = codegen.Pattern(text=batch.pattern, charset=batch.charset or codegen.DEFAULT_CHARSET)
    stalls = 0
    try:
        while True:
            with transaction.atomic():
                batch = CodeBatch.objects.select_for_update().get(pk=batch_id)
                need = batch.count - batch.generated
                if need <= 0:
                    break
                n = min(chunk_size, need)
                members: list[int | None] = [None] * n
                if batch.segment_id:
                    members = list(
                        batch.segment.members.exclude(assigned_codes__batch=batch)
                        .order_by("pk")
                        .values_list("pk", flat=True)[:n]
                    )
                    n = len(members)
                    if n == 0:
                        batch.count = batch.generated  # members left the segment meanwhile
                        batch.save(update_fields=["count"])
                        break
                codes = codegen.generate(pattern, n)
                inserted = _insert_codes(
                    batch, [(c, codegen.normalize(c), m) for c, m in zip(codes, members, strict=True)]
                )
                CodeBatch.objects.filter(pk=batch.pk).update(generated=F("generated") + inserted)
                stalls = stalls + 1 if inserted == 0 else 0
                if stalls >= 5:
                    raise RuntimeError("Could not find free codes in the pattern's space; use a longer pattern.")
            outbox.heartbeat()  # still alive: the sweep must not hand this batch to another worker
        with transaction.atomic():
            batch = CodeBatch.objects.select_for_update().get(pk=batch_id)
            batch.status = CodeBatch.Status.COMPLETED
            batch.finished_at = timezone.now()
            save_with_history(batch, actor=None, reason="Generation completed", update_fields=["status", "finished_at"])
            if batch.segment_id and batch.email_members:
                for code in Code.objects.filter(batch=batch).select_related("assigned_member", "campaign"):
                    notify_member(
                        member=code.assigned_member,
                        template="code_assigned",
                        context={
                            "code": code.code,
                            "campaign": code.campaign.name,
                            "valid_from": code.valid_from.isoformat() if code.valid_from else None,
                            "valid_until": code.valid_until.isoformat() if code.valid_until else None,
                        },
                    )
    except Exception as exc:
        with transaction.atomic():
            CodeBatch.objects.filter(pk=batch_id).update(status=CodeBatch.Status.FAILED, error=str(exc)[:2000])
        raise
    return batch


@transaction.atomic
def create_named_code(
    *,
    campaign: Campaign,
    code: str,
    actor: User,
    max_uses: int = 1,
    assigned_member: Member | None = None,
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
) -> Code:
    """One public code such as WELCOME10 (often multi-use)."""
    _require_perm(actor, "promotions.generate_codes")
    text = (code or "").strip().upper()
    normalized = codegen.normalize(text)
    if not normalized or len(text) > codegen.MAX_CODE_LENGTH or not normalized.isalnum():
        raise InvalidInput(
            "A code is letters and digits (separators allowed), at most 64 characters.",
            errors={"code": ["Invalid code."]},
        )
    if isinstance(max_uses, bool) or not isinstance(max_uses, int) or not 1 <= max_uses <= 100_000_000:
        raise InvalidInput("max_uses must be at least 1.", errors={"max_uses": ["At least 1."]})
    if valid_from and valid_until and valid_until <= valid_from:
        raise InvalidInput("valid_until must be after valid_from.", errors={"valid_until": ["After valid_from."]})
    if campaign.status == Campaign.Status.ENDED:
        raise Conflict("The campaign has ended.", code="campaign_inactive")
    obj = Code(
        campaign=campaign,
        code=text,
        normalized=normalized,
        max_uses=max_uses,
        assigned_member=assigned_member,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError as exc:
        raise AlreadyExists(f"The code {text} already exists.", errors={"code": ["Already exists."]}) from exc
    CodeEvent.objects.create(
        code=obj,
        code_text=normalized,
        kind=CodeEvent.Kind.CREATED,
        actor=_user_or_none(actor),
        client=getattr(actor, "username", "") or "",
        member=assigned_member,
    )
    return obj


@transaction.atomic
def void_code(*, code: Code, actor: User, reason: str) -> Code:
    _require_perm(actor, "promotions.void_code")
    if not (reason or "").strip():
        raise InvalidInput("A reason is required.", errors={"reason": ["This field is required."]})
    locked = Code.objects.select_for_update().get(pk=code.pk)
    check_transition(Code.STATUS_TRANSITIONS, locked.status, Code.Status.VOID, field="status")
    locked.status = Code.Status.VOID
    locked.save(update_fields=["status", "updated_at"])
    CodeEvent.objects.create(
        code=locked,
        code_text=locked.normalized,
        kind=CodeEvent.Kind.VOIDED,
        actor=_user_or_none(actor),
        client=getattr(actor, "username", "") or "",
        detail={"reason": reason},
    )
    return locked


def void_code_for_system(*, code: Code, actor: User, reason: str) -> bool:
    """Void an unused code as part of another operation (a reward rollback). False if it was used."""
    locked = Code.objects.select_for_update().get(pk=code.pk)
    if locked.status == Code.Status.VOID:
        return True
    if locked.uses > 0:
        return False
    locked.status = Code.Status.VOID
    locked.save(update_fields=["status", "updated_at"])
    CodeEvent.objects.create(
        code=locked,
        code_text=locked.normalized,
        kind=CodeEvent.Kind.VOIDED,
        actor=_user_or_none(actor),
        client=getattr(actor, "username", "") or "",
        detail={"reason": reason},
    )
    return True


# --- validation and redemption ---------------------------------------------------------------


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


def _record_attempts(req: CodeRequest, evaluation: Evaluation, actor: User, *, redeem: bool) -> None:
    codes = {c.normalized: c for c in Code.objects.filter(normalized__in=req.codes)}
    CodeEvent.objects.bulk_create(
        [
            CodeEvent(
                code=codes.get(r.code),
                code_text=r.code,
                kind=CodeEvent.Kind.VALIDATED,
                result=r.reason or "valid",
                member=req.member,
                actor=_user_or_none(actor),
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


def validate_codes(req: CodeRequest, *, actor: User) -> Evaluation:
    """Answer which codes apply, changing nothing but the timeline and the abuse counters."""
    _require_perm(actor, "promotions.view_code")
    abuse.check_not_locked(client=req.client, ip=req.ip)
    codes = list(Code.objects.filter(normalized__in=req.codes).select_related("campaign"))
    evaluation = _evaluate(req, codes)
    _record_attempts(req, evaluation, actor, redeem=False)
    return evaluation


class CodesRejected(BusinessRuleViolation):
    code = "codes_rejected"
    default_detail = "Not every code can be applied; nothing was redeemed."


def redeem_codes(req: CodeRequest, *, actor: User) -> list[CodeRedemption]:
    """Apply the whole stack atomically, or nothing.

    Locks, in order: the member's balance rows (bonus points), the codes by id, the campaigns by id,
    the member's usage rows; then evaluates on the locked rows and writes with F() updates.
    """
    _require_perm(actor, "promotions.add_coderedemption")
    member_id = req.member.pk if req.member else None
    abuse.check_not_locked(client=req.client, ip=req.ip)
    evaluation: Evaluation | None = None
    try:
        with transaction.atomic():
            preview = list(Code.objects.filter(normalized__in=req.codes).select_related("campaign__metric"))
            bonus_metrics = {
                c.campaign.metric
                for c in preview
                if c.campaign.kind == Campaign.Kind.BONUS_POINTS and c.campaign.metric_id
            }
            if req.member is not None and bonus_metrics:
                lock_balances(req.member, bonus_metrics)
            codes = list(Code.objects.select_for_update().filter(pk__in=[c.pk for c in preview]).order_by("pk"))
            campaign_ids = sorted({c.campaign_id for c in codes})
            campaigns = {
                c.pk: c for c in Campaign.objects.select_for_update().filter(pk__in=campaign_ids).order_by("pk")
            }
            if req.member is not None:
                for cid in campaign_ids:
                    CampaignMemberUsage.objects.get_or_create(campaign_id=cid, member=req.member)
                list(
                    CampaignMemberUsage.objects.select_for_update()
                    .filter(campaign_id__in=campaign_ids, member=req.member)
                    .order_by("campaign_id")
                )
            for code in codes:
                code.campaign = campaigns[code.campaign_id]
            evaluation = _evaluate(req, codes)
            if not evaluation.all_valid:
                raise CodesRejected(
                    errors={
                        "codes": [{"code": r.code, "valid": r.valid, "reason": r.reason} for r in evaluation.results]
                    }
                )
            by_norm = {c.normalized: c for c in codes}
            created = []
            for result in evaluation.results:
                code = by_norm[result.code]
                campaign = campaigns[code.campaign_id]
                Code.objects.filter(pk=code.pk).update(uses=F("uses") + 1, updated_at=timezone.now())
                if code.uses + 1 >= code.max_uses:
                    Code.objects.filter(pk=code.pk).update(status=Code.Status.REDEEMED)
                Campaign.objects.filter(pk=campaign.pk).update(
                    redemptions_count=F("redemptions_count") + 1,
                    discount_total=F("discount_total") + result.discount,
                    bonus_points_total=F("bonus_points_total") + result.bonus_points,
                )
                if req.member is not None:
                    CampaignMemberUsage.objects.filter(campaign=campaign, member=req.member).update(uses=F("uses") + 1)
                redemption = CodeRedemption(
                    code=code,
                    campaign=campaign,
                    member=req.member,
                    order_id=req.order.id,
                    order_amount=req.order.amount,
                    channel=req.order.channel,
                    discount=result.discount,
                    bonus_points=result.bonus_points,
                    redeemed_by=_user_or_none(actor),
                )
                save_with_history(redemption, actor=actor, reason="Redeemed")
                if result.bonus_points and req.member is not None:
                    redemption.ledger_entry = credit_points(
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
                CodeEvent.objects.create(
                    code=code,
                    code_text=code.normalized,
                    kind=CodeEvent.Kind.REDEEMED,
                    result="valid",
                    member=req.member,
                    actor=_user_or_none(actor),
                    client=req.client,
                    ip=req.ip,
                    order_id=req.order.id,
                    detail={
                        "discount": str(result.discount),
                        "bonus_points": result.bonus_points,
                        "redemption": redemption.pk,
                    },
                )
                created.append(redemption)
    except CodesRejected:
        if evaluation is not None:
            _record_attempts(req, evaluation, actor, redeem=True)
        raise
    abuse.record_redemption(member_id=member_id, codes=req.codes)
    return created


@transaction.atomic
def rollback_code_redemption(*, redemption: CodeRedemption, actor: User, reason: str) -> CodeRedemption:
    """Reverse one code use: counters go back, bonus points are taken back, and the code is usable
    again where its limits allow (not if it was voided or has expired)."""
    _require_perm(actor, "promotions.change_coderedemption")
    if not (reason or "").strip():
        raise InvalidInput("A reason is required.", errors={"reason": ["This field is required."]})
    current = CodeRedemption.objects.select_related("campaign__metric", "member").get(pk=redemption.pk)
    if current.bonus_points and current.member_id:
        lock_balances(current.member, [current.campaign.metric])
    use = CodeRedemption.objects.select_for_update().get(pk=redemption.pk)
    check_transition(CodeRedemption.STATUS_TRANSITIONS, use.status, CodeRedemption.Status.ROLLED_BACK, field="status")
    code = Code.objects.select_for_update().get(pk=use.code_id)
    Campaign.objects.select_for_update().filter(pk=use.campaign_id).first()
    if use.bonus_points and use.ledger_entry_id:
        debit_points(
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
        Code.objects.filter(pk=code.pk).update(status=Code.Status.ACTIVE)
    Campaign.objects.filter(pk=use.campaign_id).update(
        redemptions_count=F("redemptions_count") - 1,
        discount_total=F("discount_total") - use.discount,
        bonus_points_total=F("bonus_points_total") - use.bonus_points,
    )
    if use.member_id:
        CampaignMemberUsage.objects.filter(campaign_id=use.campaign_id, member_id=use.member_id).update(
            uses=F("uses") - 1
        )
    use.status = CodeRedemption.Status.ROLLED_BACK
    use.rolled_back_at = timezone.now()
    use.rolled_back_by = _user_or_none(actor)
    use.rollback_reason = reason.strip()[:255]
    save_with_history(
        use,
        actor=actor,
        reason=f"Rolled back: {reason}",
        update_fields=["status", "rolled_back_at", "rolled_back_by", "rollback_reason"],
    )
    CodeEvent.objects.create(
        code=code,
        code_text=code.normalized,
        kind=CodeEvent.Kind.ROLLED_BACK,
        member=use.member,
        actor=_user_or_none(actor),
        client=getattr(actor, "username", "") or "",
        order_id=use.order_id,
        detail={"reason": reason, "redemption": use.pk},
    )
    return use


# --- housekeeping ------------------------------------------------------------------------------


def expire_codes(*, now: dt.datetime | None = None) -> int:
    """Mark codes past their validity as expired (their timeline shows it from valid_until)."""
    now = now or timezone.now()
    expired = Code.objects.filter(status=Code.Status.ACTIVE, valid_until__lte=now).update(
        status=Code.Status.EXPIRED, updated_at=now
    )
    ended = Campaign.objects.filter(status__in=[Campaign.Status.ACTIVE, Campaign.Status.PAUSED], ends_at__lte=now)
    for campaign in ended:
        with transaction.atomic():
            change_campaign_status(campaign=campaign, status=Campaign.Status.ENDED, actor=None, reason="Window ended")
    return expired


def purge_code_validations(*, now: dt.datetime | None = None) -> int:
    """Drop validation attempts older than the retention period (redemptions etc. are kept)."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=settings.CODE_VALIDATION_RETENTION_DAYS)
    deleted, _ = CodeEvent.objects.filter(kind=CodeEvent.Kind.VALIDATED, created_at__lt=cutoff).delete()
    return deleted


@transaction.atomic
def mark_signal_reviewed(*, signal: AbuseSignal, actor: User) -> AbuseSignal:
    _require_perm(actor, "promotions.change_abusesignal")
    signal.reviewed = True
    signal.reviewed_by = _user_or_none(actor)
    save_with_history(signal, actor=actor, reason="Reviewed", update_fields=["reviewed", "reviewed_by"])
    return signal
