"""Thin Celery wrappers around promotions services."""

from celery import shared_task
from django.db import OperationalError

from . import services


@shared_task(
    acks_late=True, reject_on_worker_lost=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def generate_code_batch(batch_id: int) -> int:
    return services.generate_code_batch(batch_id=batch_id).generated


@shared_task(acks_late=True)
def expire_codes() -> int:
    return services.expire_codes()


@shared_task(acks_late=True)
def purge_code_validations() -> int:
    return services.purge_code_validations()


@shared_task(acks_late=True)
def requeue_stalled_batches() -> int:
    return services.requeue_stalled_batches()
