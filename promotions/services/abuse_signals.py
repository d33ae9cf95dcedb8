"""Abuse signals and the validation trail they are computed from."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from loyalty.kernel import (
    Actor,
    history_user,
    outer_service,
    require_perm,
    save_with_history,
)
from promotions.models import AbuseSignal, CodeEvent


def purge_code_validations(*, now: dt.datetime | None = None) -> int:
    """Drop validation attempts older than the retention period (redemptions etc. are kept).

    Runs its own transactions: one DELETE (autocommit).
    """
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=settings.CODE_VALIDATION_RETENTION_DAYS)
    deleted, _ = CodeEvent.objects.filter(kind=CodeEvent.Kind.VALIDATED, created_at__lt=cutoff).delete()
    return deleted


@outer_service
def mark_signal_reviewed(*, signal: AbuseSignal, actor: Actor) -> AbuseSignal:
    require_perm(actor, "promotions.change_abusesignal")
    signal.reviewed = True
    signal.reviewed_by = history_user(actor)
    save_with_history(signal, actor=actor, reason="Reviewed", update_fields=["reviewed", "reviewed_by"])
    return signal
