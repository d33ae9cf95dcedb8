"""Read queries of retro claims (the operations home's queue)."""

from __future__ import annotations

from django.db.models import Count, Min

from loyalty.insight import QueueStats

from .models import RetroClaim


def claim_queue_stats() -> QueueStats:
    """Claims waiting for an approver (index retroclaim_queue)."""
    row = RetroClaim.objects.filter(status=RetroClaim.Status.SUBMITTED).aggregate(
        n=Count("id"), oldest=Min("created_at")
    )
    return QueueStats(count=row["n"], oldest_at=row["oldest"])
