"""What promotions adds to the report and the dashboard (loyalty.insight)."""

from __future__ import annotations

from loyalty.insight import DailySeries, Figures, register_daily, register_figures

from . import selectors


def register() -> None:
    register_figures(Figures(key="promotions", compute=selectors.report_figures, order=30))
    register_daily(DailySeries(key="code_redemptions", compute=selectors.daily_code_redemptions, order=40))
