"""Thin Celery wrappers around retro services."""

from celery import shared_task

from . import services


# Sent through the outbox (retro.services): the outbox row retries a failed run with backoff and
# re-sends a run that a dead worker left behind; processing re-checks the claim under a lock.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def process_retro_claim(claim_id: int) -> dict:
    return services.process_retro_claim(claim_id=claim_id)
