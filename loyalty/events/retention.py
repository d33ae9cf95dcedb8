"""How long events and their webhook deliveries are kept (EVENT_RETENTION_DAYS; beat
``purge-events``). The feed and the deliveries would otherwise grow with every change forever."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from loyalty.models import Event, WebhookDelivery

BATCH = 5_000


def purge_events(*, now: dt.datetime | None = None, batch: int = BATCH) -> int:
    """Delete events older than EVENT_RETENTION_DAYS (0 keeps them all) with their deliveries,
    oldest first, a batch per transaction (autocommit), so no lock is held for long. Returns the
    number of events deleted.

    Events are read in id order (the primary key; the table has no index on ``created_at``) and the
    purge stops at the first one inside the retention: ids grow with time, so what follows is newer.
    """
    days = settings.EVENT_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    deleted = 0
    while True:
        rows = list(Event.objects.order_by("id").values_list("id", "created_at")[:batch])
        ids = []
        for pk, created_at in rows:
            if created_at >= cutoff:
                break
            ids.append(pk)
        if not ids:
            return deleted
        WebhookDelivery.objects.filter(event_id__in=ids).delete()
        Event.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
        if len(ids) < len(rows) or len(rows) < batch:
            return deleted
