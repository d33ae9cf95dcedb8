"""The registry of queues, figure sections and per-day series that the apps contribute."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils import timezone


@dataclass(frozen=True)
class Period:
    """An inclusive range of calendar days in the program's time zone."""

    start: dt.date
    end: dt.date

    @property
    def tz(self) -> dt.tzinfo:
        return ZoneInfo(settings.TIME_ZONE)

    @property
    def start_at(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time.min, tzinfo=self.tz)

    @property
    def end_at(self) -> dt.datetime:
        """Exclusive: midnight after the last day."""
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time.min, tzinfo=self.tz)

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @classmethod
    def last_days(cls, n: int, *, today: dt.date | None = None) -> Period:
        today = today or timezone.localdate(timezone=ZoneInfo(settings.TIME_ZONE))
        return cls(start=today - dt.timedelta(days=n - 1), end=today)


@dataclass(frozen=True)
class QueueStats:
    count: int
    oldest_at: dt.datetime | None


@dataclass(frozen=True)
class Queue:
    """A work queue on the operations home.

    ``view_perms`` decide who sees the queue at all; ``act_perms`` who gets the instructions for
    working it (someone who can only look never reads "approve or reject" advice).
    """

    key: str
    title: str
    stats: Callable[[], QueueStats]
    url_name: str
    view_perms: tuple[str, ...]
    act_perms: tuple[str, ...] = ()
    url_query: str = ""
    instructions: str = ""
    watch_only_note: str = "You can look; working this queue needs another role."
    in_report: bool = True  # listed under "queues" in the report
    order: int = 100

    def url(self) -> str:
        try:
            return reverse(self.url_name) + (f"?{self.url_query}" if self.url_query else "")
        except NoReverseMatch:
            return ""


@dataclass(frozen=True)
class Figures:
    """A section of the report: ``compute(period)`` returns top-level keys merged into the summary."""

    key: str
    compute: Callable[[Period], dict[str, Any]]
    order: int = 100


@dataclass(frozen=True)
class DailySeries:
    """One per-day count: ``compute(period)`` returns ``{date: count}`` (missing days are 0)."""

    key: str
    compute: Callable[[Period], dict[dt.date, int]]
    order: int = 100


@dataclass(frozen=True)
class Lookup:
    """A search box on the operations home: a GET form to ``url_name`` with the text as ``param``."""

    key: str
    title: str
    url_name: str
    param: str
    perms: tuple[str, ...]
    placeholder: str = ""
    help_text: str = ""
    order: int = 100

    def url(self) -> str:
        try:
            return reverse(self.url_name)
        except NoReverseMatch:
            return ""


_LOOKUPS: dict[str, Lookup] = {}
_QUEUES: dict[str, Queue] = {}
_FIGURES: dict[str, Figures] = {}
_DAILY: dict[str, DailySeries] = {}


def register_lookup(lookup: Lookup) -> None:
    _LOOKUPS[lookup.key] = lookup


def lookups_for(user) -> list[Lookup]:
    ordered = sorted(_LOOKUPS.values(), key=lambda lk: (lk.order, lk.key))
    return [lk for lk in ordered if user.has_perms(lk.perms) and lk.url()]


def register_queue(queue: Queue) -> None:
    _QUEUES[queue.key] = queue


def register_figures(figures: Figures) -> None:
    _FIGURES[figures.key] = figures


def register_daily(series: DailySeries) -> None:
    _DAILY[series.key] = series


def registered_queues() -> list[Queue]:
    return sorted(_QUEUES.values(), key=lambda q: (q.order, q.key))


def registered_figures() -> list[Figures]:
    return sorted(_FIGURES.values(), key=lambda f: (f.order, f.key))


def registered_daily() -> list[DailySeries]:
    return sorted(_DAILY.values(), key=lambda s: (s.order, s.key))


def queues_for(user) -> list[dict[str, Any]]:
    """The queues this user may see, each with its count, oldest item and (if they may act) advice."""
    now = timezone.now()
    rows = []
    for queue in registered_queues():
        if not user.has_perms(queue.view_perms):
            continue
        stats = queue.stats()
        can_act = bool(queue.act_perms) and user.has_perms(queue.act_perms)
        rows.append(
            {
                "key": queue.key,
                "title": queue.title,
                "count": stats.count,
                "oldest_at": stats.oldest_at,
                "age": (now - stats.oldest_at) if stats.oldest_at else None,
                "url": queue.url(),
                "can_act": can_act,
                "note": queue.instructions if can_act else (queue.watch_only_note if queue.act_perms else ""),
            }
        )
    return rows
