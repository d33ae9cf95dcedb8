"""Emails to members: rendered from templates/emails/, sent by Celery after commit."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string

from config.tasks import enqueue_on_commit

from .models import Member


def notify_member(*, member: Member, template: str, context: dict[str, Any]) -> bool:
    """Queue an email to the member after the current transaction commits. False when they have no email."""
    if not member.email:
        return False
    from .tasks import send_member_email

    enqueue_on_commit(send_member_email, member.pk, template, context)
    return True


def render_and_send(*, member: Member, template: str, context: dict[str, Any]) -> int:
    ctx = {"member": member, **context}
    subject = " ".join(render_to_string(f"emails/{template}_subject.txt", ctx).split())
    body = render_to_string(f"emails/{template}.txt", ctx)
    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [member.email])
