"""Thin Celery wrappers around retro services."""

from celery import shared_task
from django.db import OperationalError

from . import services


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=8,
)
def process_retro_claim(claim_id: int) -> dict:
    return services.process_retro_claim(claim_id=claim_id)


@shared_task(acks_late=True)
def requeue_stalled_claims() -> int:
    return services.requeue_stalled_claims()
