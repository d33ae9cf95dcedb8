"""What promotions adds to the report and the dashboard (loyalty.insight)."""

from __future__ import annotations

from loyalty.insight import (
    DailySeries,
    Figures,
    Lookup,
    Rollup,
    register_daily,
    register_figures,
    register_lookup,
    register_rollup,
)

from . import selectors
from .api.report import ReportFigures
from .models import Code


def register() -> None:
    register_rollup(Rollup("promotions.code_uses", selectors.rollup_code_uses))
    register_figures(Figures(key="promotions", compute=selectors.report_figures, serializer=ReportFigures, order=30))
    register_daily(DailySeries(key="code_redemptions", compute=selectors.daily_code_redemptions, order=40))
    register_lookup(
        Lookup(
            key="codes",
            title="Look up a code",
            model=Code,
            page="lookup",
            param="code",
            placeholder="The code as printed",
            help_text="Its status, uses and whole timeline; case and dashes do not matter.",
            order=20,
        )
    )
