"""The registry of queues, figure sections and per-day series that the apps contribute."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, Min, Model, Q, QuerySet
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from loyalty.kernel.registry import Registry


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

    def within(self, field: str = "created_at") -> Q:
        """Rows whose ``field`` falls in the period."""
        return Q(**{f"{field}__gte": self.start_at, f"{field}__lt": self.end_at})

    def by_day(self, queryset: QuerySet, field: str = "created_at") -> QuerySet:
        """The rows of ``queryset`` in the period, each with its ``day`` in the program's time zone
        (the one definition of a report day), to group them per day."""
        return queryset.filter(self.within(field)).annotate(day=TruncDate(field, tzinfo=self.tz))

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


def _admin_url(model: type[Model], page: str) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{page}")


def _perm(model: type[Model], verb: str) -> str:
    return f"{model._meta.app_label}.{verb}_{model._meta.model_name}"


@dataclass(frozen=True)
class Queue:
    """A work queue on the operations home: the rows ``waiting()`` selects, counted with the age of
    the oldest, linked to the admin page that lists them.

    ``waiting`` is the selector that admin page lists, so the count and the list cannot disagree.
    The page is ``admin:<app>_<model>_<page>`` (plus ``url_query``). The model's view permission
    decides who sees the queue; ``<app>.<act>_<model>`` who gets the instructions for working it
    (someone who can only look never reads "approve or reject" advice).
    """

    key: str
    title: str
    waiting: Callable[[], QuerySet]
    act: str
    page: str = "changelist"
    url_query: str = ""
    instructions: str = ""
    watch_only_note: str = "You can look; working this queue needs another role."
    in_report: bool = True  # listed under "queues" in the report
    order: int = 100

    @property
    def model(self) -> type[Model]:
        return self.waiting().model

    @property
    def view_perms(self) -> tuple[str, ...]:
        return (_perm(self.model, "view"),)

    @property
    def act_perms(self) -> tuple[str, ...]:
        return (_perm(self.model, self.act),)

    def stats(self) -> QueueStats:
        row = self.waiting().order_by().aggregate(n=Count("pk"), oldest=Min("created_at"))
        return QueueStats(count=row["n"], oldest_at=row["oldest"])

    def url(self) -> str:
        return _admin_url(self.model, self.page) + (f"?{self.url_query}" if self.url_query else "")


@dataclass(frozen=True)
class Figures:
    """A section of the report: ``compute(period)`` returns top-level keys merged into the summary."""

    key: str
    compute: Callable[[Period], dict[str, Any]]
    serializer: type  # a DRF Serializer with one field per key ``compute`` returns: the API's shape
    order: int = 100


@dataclass(frozen=True)
class DailySeries:
    """One per-day count: ``compute(period)`` returns ``{date: count}`` (missing days are 0)."""

    key: str
    compute: Callable[[Period], dict[dt.date, int]]
    order: int = 100


@dataclass(frozen=True)
class Lookup:
    """A search box on the operations home: a GET form to ``admin:<app>_<model>_<page>`` with the
    text as ``param``, shown to whoever may view the model."""

    key: str
    title: str
    model: type[Model]
    param: str
    page: str = "changelist"
    placeholder: str = ""
    help_text: str = ""
    order: int = 100

    @property
    def perms(self) -> tuple[str, ...]:
        return (_perm(self.model, "view"),)

    def url(self) -> str:
        return _admin_url(self.model, self.page)


LOOKUPS: Registry[Lookup] = Registry()
QUEUES: Registry[Queue] = Registry()
FIGURES: Registry[Figures] = Registry()
DAILY: Registry[DailySeries] = Registry()

register_lookup = LOOKUPS.register
register_queue = QUEUES.register
register_figures = FIGURES.register
register_daily = DAILY.register
registered_queues = QUEUES.entries
registered_figures = FIGURES.entries
registered_daily = DAILY.entries


def lookups_for(user) -> list[Lookup]:
    return [lk for lk in LOOKUPS.entries() if user.has_perms(lk.perms)]


def report_queues() -> list[Queue]:
    return [q for q in registered_queues() if q.in_report]


def queues_for(user) -> list[dict[str, Any]]:
    """The queues this user may see, each with its count, oldest item and (if they may act) advice."""
    now = timezone.now()
    rows = []
    for queue in registered_queues():
        if not user.has_perms(queue.view_perms):
            continue
        stats = queue.stats()
        can_act = user.has_perms(queue.act_perms)
        rows.append(
            {
                "key": queue.key,
                "title": queue.title,
                "count": stats.count,
                "oldest_at": stats.oldest_at,
                "age": (now - stats.oldest_at) if stats.oldest_at else None,
                "url": queue.url(),
                "can_act": can_act,
                "note": queue.instructions if can_act else queue.watch_only_note,
            }
        )
    return rows
