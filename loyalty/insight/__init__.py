"""Operations home and insight: the framework every app contributes to.

``loyalty`` imports none of the other apps, so each app registers, from its own ``insight.py``
(imported by its AppConfig.ready), the queues it owns (a count and the oldest item's age for the
home page), the figures it adds to the report (``GET /reports/summary/`` and the dashboard) and its
per-day series. This package assembles them per user (queues by permission) and per date range
(figures, cached for a few minutes). Every query lives in the contributing app's selectors.
"""

from .registry import (
    DailySeries,
    Figures,
    Lookup,
    Period,
    Queue,
    QueueStats,
    lookups_for,
    queues_for,
    register_daily,
    register_figures,
    register_lookup,
    register_queue,
    registered_queues,
)
from .rollup import Rollup, register_rollup

__all__ = [
    "DailySeries",
    "Figures",
    "Lookup",
    "Period",
    "Queue",
    "QueueStats",
    "Rollup",
    "lookups_for",
    "queues_for",
    "register_daily",
    "register_figures",
    "register_lookup",
    "register_queue",
    "register_rollup",
    "registered_queues",
]
