"""Messages to members: one template set, one log, sent through the outbox.

``notify_member`` is the only way a message reaches a member. It writes a ``MemberNotification``
(what support sees on the member page and ``GET /members/{id}/notifications/``) in the caller's
transaction, and, unless the message is skipped, the outbox row that sends it after commit.

- Skipped, with a reason: no email address (``no_email``); a marketing message (code
  distributions, expiry reminders: ``MARKETING_TEMPLATES``) to a member with
  ``marketing_opt_in`` off (``opted_out``). Messages about the member's own redemptions, rollbacks
  and claims always go.
- Rendering: ``templates/emails/<template>.txt`` (the message) and ``<template>_subject.txt``,
  wrapped in ``emails/layout.txt`` and ``emails/layout.html`` with ``BRAND_NAME``: a text and an
  HTML part for every message.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from . import outbox
from .events.types import MARKETING_TEMPLATES
from .models import Member, MemberNotification

Status = MemberNotification.Status
Reason = MemberNotification.Reason
TASK = "loyalty.tasks.send_notification"


def notify_member(*, member: Member, template: str, context: dict[str, Any], dedupe_key: str | None = None) -> bool:
    """Log a message to the member and queue it in the current transaction. False if skipped.

    With ``dedupe_key``, a message with the same key is written once (e.g. one reminder per lot).
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("notify_member() belongs inside the transaction of the change it reports.")
    marketing = template in MARKETING_TEMPLATES
    reason = ""
    if not member.email:
        reason = Reason.NO_EMAIL
    elif marketing and not member.marketing_opt_in:
        reason = Reason.OPTED_OUT
    notification = MemberNotification(
        member=member,
        template=template,
        category=MemberNotification.Category.MARKETING if marketing else MemberNotification.Category.TRANSACTIONAL,
        status=Status.SKIPPED if reason else Status.QUEUED,
        reason=reason,
        recipient=member.email,
        context=context,
        dedupe_key=dedupe_key,
    )
    if dedupe_key:
        try:
            with transaction.atomic():
                notification.save()
        except IntegrityError:
            return False  # written before (and sent, or skipped, then)
    else:
        notification.save()
    if reason:
        return False
    message = outbox.enqueue(TASK, args=[notification.pk], kind=outbox.Kind.EMAIL)
    MemberNotification.objects.filter(pk=notification.pk).update(outbox_message=message)
    return True


def render(*, member: Member, template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) of one message, from the one template set."""
    ctx = {"member": member, "brand": settings.BRAND_NAME, **context}
    subject = " ".join(render_to_string(f"emails/{template}_subject.txt", ctx).split())
    body = render_to_string(f"emails/{template}.txt", ctx).strip()
    layout = {**ctx, "subject": subject, "body": body}
    return subject, render_to_string("emails/layout.txt", layout), render_to_string("emails/layout.html", layout)


def render_and_send(*, member: Member, template: str, context: dict[str, Any]) -> int:
    subject, text, html = render(member=member, template=template, context=context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [member.email])
    message.attach_alternative(html, "text/html")
    return message.send()


def send(notification_id: int) -> int:
    """The task ``send_notification``: send one logged message, record sent (or the error)."""
    notification = MemberNotification.objects.select_related("member").filter(pk=notification_id).first()
    if notification is None or notification.status != Status.QUEUED:
        return 0  # skipped, or sent already (a duplicate delivery)
    member = notification.member
    try:
        if not member.email:
            raise ValueError("The member has no email address any more.")
        sent = render_and_send(member=member, template=notification.template, context=notification.context)
    except Exception as exc:
        run = outbox.current_message()
        last = run is None or run.attempts >= run.max_attempts
        MemberNotification.objects.filter(pk=notification.pk, status=Status.QUEUED).update(
            status=Status.FAILED if last else Status.QUEUED,
            attempts=F("attempts") + 1,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
        )
        raise
    MemberNotification.objects.filter(pk=notification.pk, status__in=MemberNotification.sources(Status.SENT)).update(
        status=Status.SENT, sent_at=timezone.now(), attempts=F("attempts") + 1, last_error=""
    )
    return sent
