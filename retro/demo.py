"""Demo retro claims (run by ``manage.py seed_demo``).

Retro claims are switched on in the program settings (by the admin), then the support agent files
claims for bills recorded without a loyalty card: two wait in the queue, one is approved by the
approver and processed (points by the rules and tier of the purchase date), one is rejected.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from loyalty import services as loyalty
from loyalty.demo import NON_LOYALTY_PREFIX, register_demo_step, say
from loyalty.models import Member, ProgramSettings, Transaction

from . import services
from .models import RetroClaim

NOTES = [
    "Forgot the card at the till; receipt photo attached.",
    "Paid by a colleague's card, member asked at the desk.",
    "App was offline during checkout.",
    "Receipt shown at the service desk.",
]


def seed_retro(*, stdout, rng, users) -> None:
    if RetroClaim.objects.filter(transaction__external_id__startswith=NON_LOYALTY_PREFIX).exists():
        say(stdout, "retro", "already seeded")
        return
    support, approver = users["support"], users["approver"]
    program = ProgramSettings.load()
    if not program.retro_enabled:
        program = loyalty.update_program_settings(
            actor=users["admin"], reason="Retro claims switched on for the demo", retro_enabled=True
        )
    window = dt.timedelta(days=program.retro_window_days)
    buffer = dt.timedelta(hours=program.retro_enrolment_buffer_hours)
    bills = list(
        Transaction.objects.filter(external_id__startswith=NON_LOYALTY_PREFIX, member__isnull=True)
        .exclude(retro_claims__status__in=RetroClaim.LIVE_STATUSES)
        .order_by("external_id")
    )
    members = list(
        Member.objects.filter(external_id__startswith="DEMO-", status=Member.Status.ACTIVE).order_by("external_id")
    )
    claims = []
    taken: set[int] = set()
    for bill in bills:
        if len(claims) == len(NOTES):
            break
        if bill.returned_amount >= bill.amount or bill.occurred_at < timezone.now() - window:
            continue
        # A member who was enrolled when the purchase was made, and has no claim yet.
        fits = [m for m in members if m.pk not in taken and bill.occurred_at >= m.enrolled_at - buffer]
        if not fits:
            continue
        member = rng.choice(fits)
        taken.add(member.pk)
        claims.append(
            services.submit_retro_claim(
                transaction_=bill,
                member=member,
                actor=support,
                channel=RetroClaim.Channel.ADMIN,
                note=NOTES[len(claims)],
            )
        )
    processed = 0
    if len(claims) > 2:
        approved = services.approve_retro_claim(claim=claims[2], actor=approver)
        # Processing is queued after commit; inside seed_demo's transaction, run it now (the queued
        # task then finds the claim processed and does nothing).
        services.process_retro_claim(claim_id=approved.pk)
        processed = 1
    if len(claims) > 3:
        services.reject_retro_claim(claim=claims[3], actor=approver, reason="The receipt is from another store chain")
    say(
        stdout,
        "retro",
        f"retro claims on; {len(claims)} claims filed by support, {processed} approved and processed, "
        f"{max(0, len(claims) - 3)} rejected",
    )


register_demo_step(50, "retro", seed_retro)
