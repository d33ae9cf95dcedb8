"""People's operations on the outbox (the machine's own moves live in ``loyalty.outbox``)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from .. import outbox
from ..exceptions import InvalidInput, InvalidTransition
from ..models import OutboxMessage
from ..workflow import check_transition, save_with_history
from .core import User, _require_perm

Status = OutboxMessage.Status


@transaction.atomic
def resend_outbox_messages(*, messages: Iterable[OutboxMessage], actor: User, reason: str) -> int:
    """Send messages again now: failed ones after the cause is fixed, done ones on purpose (an email
    the member did not get), waiting ones without their backoff. The attempt count starts again.

    A running message is refused: a worker is on it, and if it died the sweep re-sends it once its
    lease runs out. The consumers are idempotent, so a re-sent task changes nothing twice; a re-sent
    email is sent again.
    """
    _require_perm(actor, "loyalty.resend_outboxmessage")
    if not (reason or "").strip():
        raise InvalidInput("A reason is required.", errors={"reason": ["This field is required."]})
    ids = sorted(m.pk for m in messages)
    rows = list(OutboxMessage.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    now = timezone.now()
    for row in rows:
        if row.status == Status.RUNNING:
            raise InvalidTransition(
                f"Message #{row.pk} is running; the sweep re-sends it if its worker died.",
                errors={"status": ["Running messages are not re-sent by hand."]},
            )
        if row.status != Status.PENDING:
            check_transition(OutboxMessage.STATUS_TRANSITIONS, row.status, Status.PENDING, field="status")
        row.status = Status.PENDING
        row.available_at = now
        row.attempts = 0
        row.lease_until = None
        save_with_history(
            row,
            actor=actor,
            reason=f"Re-sent: {reason.strip()}",
            update_fields=["status", "available_at", "attempts", "lease_until"],
        )
    outbox.publish_on_commit([row.pk for row in rows])
    return len(rows)
