"""The report's daily rollup (loyalty.insight.rollup): closing days and reopening them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction

from ..insight.registry import Period
from ..insight.rollup import last_closed_day, registered_rollups
from ..kernel import own_transaction
from ..models import DailyFigure, InsightDay


def _runs(days: Iterable[dt.date]) -> list[Period]:
    """Contiguous runs of days, so each figure is one grouped query per run, not one per day."""
    runs: list[Period] = []
    for day in sorted(set(days)):
        if runs and runs[-1].end + dt.timedelta(days=1) == day:
            runs[-1] = Period(runs[-1].start, day)
        else:
            runs.append(Period(day, day))
    return runs


def close_days(days: Iterable[dt.date]) -> int:
    """Compute every registered figure for these closed days and store it; returns the days stored.

    Runs its own transactions (one per run of consecutive days). Days not yet closed are skipped.
    Safe to run twice at once: a closed day's figures cannot change, so both computations store
    the same rows and the second one's inserts are ignored.
    """
    last = last_closed_day()
    days = [d for d in days if d <= last]
    stored = 0
    for run in _runs(days):
        figures = [
            DailyFigure(day=day, key=rollup.key, dim=str(dim), value=value)
            for rollup in registered_rollups()
            for day, dim, value in rollup.compute(run)
        ]
        with own_transaction():
            DailyFigure.objects.bulk_create(figures, ignore_conflicts=True, batch_size=1000)
            InsightDay.objects.bulk_create([InsightDay(day=d) for d in run.days()], ignore_conflicts=True)
        stored += len(run.days())
    return stored


def close_missing_days(period: Period) -> int:
    """Store the days of ``period`` that are closed and not stored yet; returns how many. Cheap when
    nothing is missing: one query of the stored days. Runs its own transactions (``close_days``)."""
    have = set(InsightDay.objects.filter(day__gte=period.start, day__lte=period.end).values_list("day", flat=True))
    return close_days([day for day in period.days() if day not in have])


def close_recent_days(days: int = 400) -> int:
    """Beat: store every closed day of the last ``days`` that is missing (the nightly close, and
    the catch-up after a gap). Runs its own transactions (``close_missing_days``)."""
    last = last_closed_day()
    return close_missing_days(Period(last - dt.timedelta(days=days - 1), last))


def reopen_days(start: dt.datetime, end: dt.datetime | None = None) -> None:
    """Building block: forget the stored figures of the days from ``start`` to ``end`` (now if
    None), inside the transaction of a write that changed them (a backdated import); the next
    report or beat run computes them again.

    Done inside the caller's transaction and once more after its commit, so a close that computed
    the days before the write committed cannot leave figures that miss it.
    """
    tz = ZoneInfo(settings.TIME_ZONE)
    first = start.astimezone(tz).date()
    last = end.astimezone(tz).date() if end is not None else last_closed_day() + dt.timedelta(days=1)

    def forget() -> None:
        InsightDay.objects.filter(day__gte=first, day__lte=last).delete()
        DailyFigure.objects.filter(day__gte=first, day__lte=last).delete()

    forget()
    transaction.on_commit(forget)
