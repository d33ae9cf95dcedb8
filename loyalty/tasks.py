"""Thin Celery wrappers around loyalty services."""

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import outbox, services
from .models import IdempotencyRecord


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def expire_points() -> int:
    return services.expire_points()


@shared_task(acks_late=True)
def purge_idempotency_records() -> int:
    cutoff = timezone.now() - dt.timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def activate_pending_points() -> int:
    return services.activate_pending_points()


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def requalify_tiers() -> int:
    return services.requalify_tiers()


# Sent through the outbox (loyalty.notifications): a mail-server error is retried with the
# outbox's backoff for emails; EMAIL_TIMEOUT keeps a hung server from holding the worker.
@shared_task(acks_late=True)
def send_notification(notification_id: int) -> int:
    from .notifications import send

    return send(notification_id)


# Messages written before the notification log (still in an outbox at the upgrade): sent the same.
@shared_task(acks_late=True)
def send_member_email(member_id: int, template: str, context: dict) -> int:
    from .models import Member
    from .notifications import render_and_send

    member = Member.objects.filter(pk=member_id).first()
    if member is None or not member.email:
        return 0
    return render_and_send(member=member, template=template, context=context)


@shared_task(acks_late=True)
def sweep_outbox() -> dict:
    """Beat, every OUTBOX_SWEEP_SECONDS: publish what the outbox still holds."""
    result = outbox.sweep()
    return {"published": result.published, "ran_inline": result.ran_inline, "failed": result.failed}


@shared_task(acks_late=True)
def purge_outbox() -> int:
    return outbox.purge()


@shared_task(acks_late=True)
def purge_events() -> int:
    from .events.retention import purge_events

    return purge_events()


# A delivery attempt is bounded by WEBHOOK_TIMEOUT_SECONDS itself; the time limits are a backstop.
@shared_task(
    acks_late=True,
    soft_time_limit=settings.WEBHOOK_TIMEOUT_SECONDS + 10,
    time_limit=settings.WEBHOOK_TIMEOUT_SECONDS + 20,
)
def deliver_webhook(delivery_id: int) -> str:
    from .events.webhooks import attempt

    return attempt(delivery_id)


@shared_task(acks_late=True)
def deliver_webhooks() -> dict:
    """Beat, every WEBHOOK_BEAT_SECONDS: webhook deliveries due now onto the webhook queue."""
    from .events.webhooks import deliver_due

    result = deliver_due()
    return {"published": result.published, "ran_inline": result.ran_inline}


@shared_task(acks_late=True)
def send_expiry_reminders() -> int:
    from .reminders import send_expiry_reminders as run

    return run()


@shared_task(acks_late=True)
def close_insight_days() -> int:
    """Beat, hourly: store the report's figures of every closed day not stored yet (the nightly
    close of yesterday, and the catch-up after a gap or a reopened day)."""
    from .services.insight import close_recent_days

    return close_recent_days()


@shared_task(acks_late=True)
def refresh_insight_report() -> str:
    """Recompute the last 30 days' report into the cache before it expires, so that the operations
    home and the dashboard's default range never compute it inside a request."""
    from .insight import Period, report

    period = Period.last_days(report.DEFAULT_DAYS)
    report.summary(period, fresh=True)
    return f"{period.start}..{period.end}"
