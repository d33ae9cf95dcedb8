"""The loyalty core's own contributions: the stuck-outbox queue and the points figures.

Other apps register their queues the same way, from their own ``insight.py``.
"""

from __future__ import annotations

from ..models import Member
from . import selectors
from .api import PointsFigures, QueueFigures
from .registry import Figures, Lookup, Period, Queue, register_figures, register_lookup, register_queue
from .report import queue_figures
from .rollup import Rollup, register_rollup


def _points_figures(period: Period) -> dict:
    return {
        "liability": selectors.liability(),
        "expiring_30_days": selectors.expiring_within(30),
        "breakage": selectors.breakage(period),
    }


def register() -> None:
    register_queue(
        Queue(
            key="stuck_outbox",
            title="Stuck or failed background messages",
            waiting=selectors.stuck_outbox,
            act="resend",
            url_query="stuck=stuck",
            instructions="Read the last error, fix the cause, then re-send the messages with a reason.",
            in_report=False,
            order=90,
        )
    )
    register_queue(
        Queue(
            key="failed_deliveries",
            title="Failed webhook deliveries",
            waiting=selectors.failed_deliveries,
            act="replay",
            url_query="status__exact=failed",
            instructions="Check the receiver (last status code and error), then replay the deliveries.",
            in_report=False,
            order=95,
        )
    )
    register_rollup(Rollup("points.issued", selectors.rollup_issued))
    register_rollup(Rollup("points.expired", selectors.rollup_expired))
    register_figures(Figures(key="points", compute=_points_figures, serializer=PointsFigures, order=10))
    # What waits now, between the redemptions (20) and the promotions (30) sections.
    register_figures(Figures(key="queues", compute=queue_figures, serializer=QueueFigures, order=25))
    register_lookup(
        Lookup(
            key="members",
            title="Find a member",
            model=Member,
            param="q",
            placeholder="Name, email, phone or customer id",
            help_text="Part of a name or email, the phone's digits, or the customer id in any case.",
            order=10,
        )
    )
