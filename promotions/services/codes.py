"""Code batches and single codes: creating, generating, voiding."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from loyalty import events, outbox
from loyalty.exceptions import AlreadyExists, Conflict, InvalidInput
from loyalty.kernel import (
    SYSTEM,
    Actor,
    actor_name,
    bulk_transition,
    check_whole_number,
    history_user,
    may_transition,
    outer_service,
    own_transaction,
    require_perm,
    require_reason,
    save_unique,
    save_with_history,
    transition,
)
from loyalty.models import Member
from loyalty.notifications import notify_member
from promotions import codegen
from promotions.exceptions import CAMPAIGN_INACTIVE
from promotions.models import Campaign, Code, CodeBatch, CodeEvent

from .campaigns import change_campaign_status_in_transaction
from .copy_codes import insert_codes

GENERATION_CHUNK = 20_000


@outer_service
def create_code_batch(
    *,
    campaign: Campaign,
    actor: Actor,
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
    require_perm(actor, "promotions.generate_codes")
    if campaign.status == Campaign.Status.ENDED:
        raise Conflict("The campaign has ended.", code=CAMPAIGN_INACTIVE)
    if segment is not None:
        count = segment.members.count()
        if count == 0:
            raise InvalidInput("The segment has no members.", errors={"segment": ["Empty segment."]})
    limit = settings.CODE_BATCH_MAX_COUNT
    check_whole_number(
        count,
        field="count",
        detail=f"count must be between 1 and {limit}.",
        error=f"Between 1 and {limit}.",
        maximum=limit,
    )
    check_whole_number(
        max_uses, field="max_uses", detail="max_uses must be at least 1.", error="At least 1.", maximum=1_000_000
    )
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
        created_by=history_user(actor),
    )
    save_with_history(batch, actor=actor, reason="Generation requested")
    from promotions.tasks import generate_code_batch

    outbox.enqueue_on_commit(generate_code_batch, batch.pk)
    return batch


def generate_code_batch(*, batch_id: int, chunk_size: int = GENERATION_CHUNK) -> CodeBatch:
    """Generate a batch chunk by chunk; each chunk commits with its progress, so a crash resumes.

    Runs its own transactions (durable), one per chunk.
    """
    with own_transaction():
        batch = CodeBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status == CodeBatch.Status.COMPLETED:
            return batch
        if batch.status != CodeBatch.Status.RUNNING:
            transition(
                batch,
                "status",
                CodeBatch.Status.RUNNING,
                actor=SYSTEM,
                reason="Generation started",
                changes={"error": ""},
            )
    pattern = codegen.Pattern(text=batch.pattern, charset=batch.charset or codegen.DEFAULT_CHARSET)
    stalls = 0
    try:
        while True:
            with own_transaction():
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
                inserted = insert_codes(
                    batch, [(c, codegen.normalize(c), m) for c, m in zip(codes, members, strict=True)]
                )
                CodeBatch.objects.filter(pk=batch.pk).update(generated=F("generated") + inserted)
                stalls = stalls + 1 if inserted == 0 else 0
                if stalls >= 5:
                    raise RuntimeError("Could not find free codes in the pattern's space; use a longer pattern.")
            outbox.heartbeat()  # still alive: the sweep must not hand this batch to another worker
        with own_transaction():
            batch = CodeBatch.objects.select_for_update().get(pk=batch_id)
            transition(
                batch,
                "status",
                CodeBatch.Status.COMPLETED,
                actor=SYSTEM,
                reason="Generation completed",
                changes={"finished_at": timezone.now()},
            )
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
            events.emit("code_batch.completed", batch)
    except Exception as exc:
        with own_transaction():
            failed = CodeBatch.objects.select_for_update().get(pk=batch_id)
            error = {"error": str(exc)[:2000]}
            if may_transition(failed, "status", CodeBatch.Status.FAILED):
                transition(
                    failed, "status", CodeBatch.Status.FAILED, actor=SYSTEM, reason="Generation failed", changes=error
                )
            else:  # already failed (or completed meanwhile): keep the last error
                CodeBatch.objects.filter(pk=batch_id).update(**error)
        raise
    return batch


@outer_service
def create_named_code(
    *,
    campaign: Campaign,
    code: str,
    actor: Actor,
    max_uses: int = 1,
    assigned_member: Member | None = None,
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
) -> Code:
    """One public code such as WELCOME10 (often multi-use)."""
    require_perm(actor, "promotions.generate_codes")
    text = (code or "").strip().upper()
    normalized = codegen.normalize(text)
    if not normalized or len(text) > codegen.MAX_CODE_LENGTH or not normalized.isalnum():
        raise InvalidInput(
            "A code is letters and digits (separators allowed), at most 64 characters.",
            errors={"code": ["Invalid code."]},
        )
    check_whole_number(
        max_uses, field="max_uses", detail="max_uses must be at least 1.", error="At least 1.", maximum=100_000_000
    )
    if valid_from and valid_until and valid_until <= valid_from:
        raise InvalidInput("valid_until must be after valid_from.", errors={"valid_until": ["After valid_from."]})
    if campaign.status == Campaign.Status.ENDED:
        raise Conflict("The campaign has ended.", code=CAMPAIGN_INACTIVE)
    obj = Code(
        campaign=campaign,
        code=text,
        normalized=normalized,
        max_uses=max_uses,
        assigned_member=assigned_member,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    already = AlreadyExists(f"The code {text} already exists.", errors={"code": ["Already exists."]})
    save_unique(obj, actor=actor, reason="Created", duplicate=already)
    record_code_event(obj, CodeEvent.Kind.CREATED, actor=actor, member=assigned_member)
    return obj


@outer_service
def void_code(*, code: Code, actor: Actor, reason: str) -> Code:
    require_perm(actor, "promotions.void_code")
    require_reason(reason)
    locked = Code.objects.select_for_update().get(pk=code.pk)
    _void(locked, actor=actor, reason=reason)
    return locked


def void_code_for_system(*, code: Code, actor: Actor, reason: str) -> bool:
    """Void an unused code as part of another operation (a reward rollback). False if it was used.

    Building block: the caller holds the transaction.
    """
    locked = Code.objects.select_for_update().get(pk=code.pk)
    if locked.status == Code.Status.VOID:
        return True
    if locked.uses > 0:
        return False
    _void(locked, actor=actor, reason=reason)
    return True


def record_code_event(code: Code, kind: str, *, actor: Actor, **fields: Any) -> CodeEvent:
    """One entry of a code's timeline, saying who did it (user and client name) the same way everywhere.

    Building block: written in the caller's transaction, with the change it records.
    """
    return CodeEvent.objects.create(
        code=code, code_text=code.normalized, kind=kind, actor=history_user(actor), client=actor_name(actor), **fields
    )


def _void(locked: Code, *, actor: Actor, reason: str) -> None:
    transition(locked, "status", Code.Status.VOID, actor=actor, reason=reason)
    record_code_event(locked, CodeEvent.Kind.VOIDED, actor=actor, detail={"reason": reason})
    events.emit("code.voided", locked, member=locked.assigned_member)


def expire_codes(*, now: dt.datetime | None = None) -> int:
    """Mark codes past their validity as expired (their timeline shows it from valid_until).

    Runs its own transactions: one UPDATE, then one (durable) per ended campaign.
    """
    now = now or timezone.now()
    expired = bulk_transition(
        Code.objects.filter(status=Code.Status.ACTIVE, valid_until__lte=now),
        "status",
        Code.Status.EXPIRED,
        changes={"updated_at": now},
    )
    ended = Campaign.objects.filter(status__in=[Campaign.Status.ACTIVE, Campaign.Status.PAUSED], ends_at__lte=now)
    for campaign in ended:
        with own_transaction():
            change_campaign_status_in_transaction(
                campaign=campaign, status=Campaign.Status.ENDED, actor=SYSTEM, reason="Window ended"
            )
    return expired
