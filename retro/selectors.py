"""Read queries of retro claims."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import RetroClaim


def claim_queue() -> QuerySet[RetroClaim]:
    """Claims waiting for an approver, oldest first (index retroclaim_queue): the approvers' queue
    page and its count on the operations home."""
    return RetroClaim.objects.filter(status=RetroClaim.Status.SUBMITTED).order_by("created_at", "id")
