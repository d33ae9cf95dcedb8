"""Expiry reminders: once per lot, ``expiry_reminder_days`` before its points expire."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from . import events
from .kernel import own_transaction
from .models import MemberNotification, PointLot, ProgramSettings
from .notifications import notify_member

TEMPLATE = "points_expiring"


def reminder_key(lot_id: int) -> str:
    return f"expiry-reminder:{lot_id}"


def send_expiry_reminders(*, now: dt.datetime | None = None) -> int:
    """Beat, daily: remind each member of every lot with points left that expires within the
    program's ``expiry_reminder_days`` (null: off), once per lot, and emit ``points.expiring``.

    The once is the notification's ``dedupe_key``: a skipped reminder (opted out, no email) counts
    too, so opting in later does not bring back an old reminder. Runs its own transactions: one
    short one per lot."""
    days = ProgramSettings.load().expiry_reminder_days
    if days is None:
        return 0
    now = now or timezone.now()
    lots = list(
        PointLot.objects.filter(
            remaining__gt=0, pending=False, expires_at__gt=now, expires_at__lte=now + dt.timedelta(days=days)
        )
        .order_by("expires_at", "pk")
        .values_list("pk", flat=True)
    )
    sent = 0
    for start in range(0, len(lots), 1000):
        chunk = lots[start : start + 1000]
        done = set(
            MemberNotification.objects.filter(dedupe_key__in=[reminder_key(pk) for pk in chunk]).values_list(
                "dedupe_key", flat=True
            )
        )
        for pk in chunk:
            if reminder_key(pk) not in done:
                sent += _remind(pk, now)
    return sent


@own_transaction()  # one piece of the job (durable; a savepoint inside a unit of work)
def _remind(lot_id: int, now: dt.datetime) -> int:
    lot = PointLot.objects.select_for_update(of=("self",)).select_related("member", "metric").get(pk=lot_id)
    if lot.remaining <= 0 or MemberNotification.objects.filter(dedupe_key=reminder_key(lot.pk)).exists():
        return 0  # spent meanwhile, or another run got here first
    notify_member(
        member=lot.member,
        template=TEMPLATE,
        context={"points": lot.remaining, "metric": lot.metric.name, "expires_on": lot.expires_at.date().isoformat()},
        dedupe_key=reminder_key(lot.pk),
    )
    events.emit("points.expiring", lot, member=lot.member)
    return 1
