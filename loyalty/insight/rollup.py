"""The daily rollup behind the report: figures of closed days are stored once, per day, and summed.

An app registers a ``Rollup`` (from its ``insight.py``): a key and a ``compute(period)`` that
counts, live, per day (program time zone) and per breakdown value. The report asks ``totals`` or
``per_day`` for a range: the closed days come from ``DailyFigure`` (any missing closed day is
computed first, so the first report after a gap catches up), the days still open (today, and
yesterday for the first ``GRACE`` after midnight) are computed live. Both paths use the same
``compute``, so the result equals the live computation exactly (tests/insight/test_rollup.py).

Only figures that a later write cannot change are rolled up: each is defined by the day of its
event (a redemption's creation, a ledger entry, a code use), and every row it counts is immutable
in the columns it reads. The two writes that can still land in a closed day (a legacy import of a
backdated redemption, an imported tier interval) reopen the days they touch
(``loyalty.services.insight.reopen_days``). Figures that change after the fact (rollbacks by
their status, code uses by theirs, current segments, balances) stay live.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from loyalty.kernel.registry import Registry

from .registry import Period

# A day is closed once it ended this long ago: a transaction that began before midnight has
# committed by then, so nothing dated that day is still on its way.
GRACE = dt.timedelta(minutes=15)

Rows = Iterable[tuple[dt.date, str, int]]


@dataclass(frozen=True)
class Rollup:
    """``compute(period)`` yields ``(day, dim, value)``: one value per day and breakdown ("" for none)."""

    key: str
    compute: Callable[[Period], Rows]


ROLLUPS: Registry[Rollup] = Registry()
register_rollup = ROLLUPS.register
registered_rollups = ROLLUPS.entries
_LIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("insight_rollup_live", default=False)
# Within one report (``reading``): the answers already read, so a figure two sections use (the
# redemptions count and the per-day series) is read once, and the closed days are checked once.
_MEMO: contextvars.ContextVar[dict | None] = contextvars.ContextVar("insight_rollup_memo", default=None)


@contextmanager
def computed_live() -> Iterator[None]:
    """Ignore the stored days: every figure computed from the source rows (tests, checks)."""
    token = _LIVE.set(True)
    try:
        yield
    finally:
        _LIVE.reset(token)


@contextmanager
def reading() -> Iterator[None]:
    """One report's reads: each key and range read once (the rows do not change meanwhile)."""
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def last_closed_day(now: dt.datetime | None = None) -> dt.date:
    now = now or timezone.now()
    return (now - GRACE).astimezone(ZoneInfo(settings.TIME_ZONE)).date() - dt.timedelta(days=1)


def split(period: Period, *, now: dt.datetime | None = None) -> tuple[Period | None, Period | None]:
    """The closed days of ``period`` (stored) and the open ones (computed live); either may be None."""
    last = last_closed_day(now)
    closed = Period(period.start, min(period.end, last)) if period.start <= last else None
    open_ = Period(max(period.start, last + dt.timedelta(days=1)), period.end) if period.end > last else None
    return closed, open_


def ensure_closed(period: Period) -> int:
    """Compute and store the closed days of ``period`` that are missing (once per report); returns how many."""
    from loyalty.services import insight as service

    closed, _ = split(period)
    if closed is None:
        return 0
    memo = _MEMO.get()
    if memo is not None:
        if ("closed", closed) in memo:
            return 0
        memo[("closed", closed)] = True
    return service.close_missing_days(closed)


def per_day(key: str, period: Period) -> dict[dt.date, dict[str, int]]:
    """``{day: {dim: value}}`` for the range: stored closed days plus the open days live."""

    memo = _MEMO.get()
    if memo is None:
        return _per_day(key, period)
    if (key, period, _LIVE.get()) not in memo:
        memo[(key, period, _LIVE.get())] = _per_day(key, period)
    return {day: dict(dims) for day, dims in memo[(key, period, _LIVE.get())].items()}


def _per_day(key: str, period: Period) -> dict[dt.date, dict[str, int]]:
    from loyalty.models import DailyFigure

    rollup = ROLLUPS[key]
    out: dict[dt.date, dict[str, int]] = {}

    def add(rows: Rows) -> None:
        for day, dim, value in rows:
            bucket = out.setdefault(day, {})
            bucket[dim] = bucket.get(dim, 0) + value

    if _LIVE.get():
        add(rollup.compute(period))
        return out
    closed, open_ = split(period)
    if closed is not None:
        ensure_closed(closed)
        add(
            DailyFigure.objects.filter(key=key, day__gte=closed.start, day__lte=closed.end)
            .order_by()
            .values_list("day", "dim", "value")
        )
    if open_ is not None:
        add(rollup.compute(open_))
    return out


def totals(key: str, period: Period) -> dict[str, int]:
    """``{dim: value}`` summed over the range."""
    out: dict[str, int] = {}
    for dims in per_day(key, period).values():
        for dim, value in dims.items():
            out[dim] = out.get(dim, 0) + value
    return out


def daily_total(key: str, period: Period) -> dict[dt.date, int]:
    """``{day: value}`` (all breakdowns added), for a per-day series."""
    return {day: sum(dims.values()) for day, dims in per_day(key, period).items()}
