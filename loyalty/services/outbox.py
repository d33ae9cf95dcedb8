"""People's operations on the outbox (the machine's own moves live in ``loyalty.outbox``)."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from loyalty.kernel import (
    Actor,
    outer_service,
    require_perm,
    require_reason,
    save_with_history,
    transition,
)

from .. import outbox
from ..exceptions import InvalidTransition
from ..models import OutboxMessage

Status = OutboxMessage.Status


@outer_service
def resend_outbox_messages(*, messages: Iterable[OutboxMessage], actor: Actor, reason: str) -> int:
    """Send messages again now: failed ones after the cause is fixed, done ones on purpose (an email
    the member did not get), waiting ones without their backoff. The attempt count starts again.

    A running message is refused: a worker is on it, and if it died the sweep re-sends it once its
    lease runs out. The consumers are idempotent, so a re-sent task changes nothing twice; a re-sent
    email is sent again.
    """
    require_perm(actor, "loyalty.resend_outboxmessage")
    require_reason(reason)
    ids = sorted(m.pk for m in messages)
    rows = list(OutboxMessage.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    now = timezone.now()
    for row in rows:
        if row.status == Status.RUNNING:
            raise InvalidTransition(
                f"Message #{row.pk} is running; the sweep re-sends it if its worker died.",
                errors={"status": ["Running messages are not re-sent by hand."]},
            )
        again = {"available_at": now, "attempts": 0, "lease_until": None}
        if row.status != Status.PENDING:
            transition(row, "status", Status.PENDING, actor=actor, reason=f"Re-sent: {reason.strip()}", changes=again)
            continue
        for name, value in again.items():  # already pending: only made due now
            setattr(row, name, value)
        save_with_history(row, actor=actor, reason=f"Re-sent: {reason.strip()}", update_fields=["status", *again])
    outbox.publish_on_commit([row.pk for row in rows])
    return len(rows)
