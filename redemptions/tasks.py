"""Thin Celery wrappers around redemption services."""

from celery import shared_task

from . import services


@shared_task(acks_late=True)
def expire_awards() -> int:
    return services.expire_awards()
