"""Thin Celery wrappers around promotions services."""

from celery import shared_task

from . import services


# Sent through the outbox (promotions.services): retries with backoff and re-sends after a dead
# worker come from the outbox row; generation resumes from the batch's committed progress.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def generate_code_batch(batch_id: int) -> int:
    return services.generate_code_batch(batch_id=batch_id).generated


@shared_task(acks_late=True)
def expire_codes() -> int:
    return services.expire_codes()


@shared_task(acks_late=True)
def purge_code_validations() -> int:
    return services.purge_code_validations()
