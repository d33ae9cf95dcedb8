"""Emails to members: rendered from templates/emails/, written to the outbox, sent after commit."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string

from . import outbox
from .models import Member


def notify_member(*, member: Member, template: str, context: dict[str, Any]) -> bool:
    """Write an email to the member into the outbox of the current transaction. False without an email.

    It is sent once the transaction commits (never if it rolls back), retried if the mail server fails.
    """
    if not member.email:
        return False
    from .tasks import send_member_email

    outbox.enqueue(send_member_email, args=[member.pk, template, context], kind=outbox.Kind.EMAIL)
    return True


def render_and_send(*, member: Member, template: str, context: dict[str, Any]) -> int:
    ctx = {"member": member, **context}
    subject = " ".join(render_to_string(f"emails/{template}_subject.txt", ctx).split())
    body = render_to_string(f"emails/{template}.txt", ctx)
    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [member.email])
