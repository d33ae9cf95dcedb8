"""What redemptions adds to the operations home and the report (loyalty.insight)."""

from __future__ import annotations

from loyalty.insight import (
    DailySeries,
    Figures,
    Queue,
    Rollup,
    register_daily,
    register_figures,
    register_queue,
    register_rollup,
)

from . import selectors
from .api.report import ReportFigures
from .models import Redemption


def register() -> None:
    register_queue(
        Queue(
            key="redemption_approvals",
            title="Redemptions waiting for approval",
            waiting=selectors.approval_queue,
            act="approve",
            page="queue",
            instructions="Open each one, check the member and the reward, then approve, reject or return it.",
            order=10,
        )
    )
    register_queue(
        Queue(
            key="rollback_approvals",
            title="Rollbacks waiting for a second person",
            waiting=selectors.rollback_queue,
            act="approve",
            page="queue",
            instructions="You cannot approve a rollback you requested; approve or reject the others with a note.",
            order=20,
        )
    )
    register_rollup(Rollup("redemptions.count", lambda p: selectors.rollup_count(p, Redemption.Kind.REDEMPTION)))
    register_rollup(Rollup("awards.count", lambda p: selectors.rollup_count(p, Redemption.Kind.AWARD)))
    register_rollup(Rollup("redemptions.points", selectors.rollup_points))
    register_rollup(Rollup("redemptions.by_tier", selectors.rollup_by_tier))
    register_figures(Figures(key="redemptions", compute=selectors.report_figures, serializer=ReportFigures, order=20))
    register_daily(DailySeries(key="redemptions", compute=selectors.daily_redemptions, order=10))
    register_daily(DailySeries(key="awards", compute=selectors.daily_awards, order=20))
    register_daily(DailySeries(key="rollbacks", compute=selectors.daily_rollbacks, order=30))
