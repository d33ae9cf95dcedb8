"""``manage.py close_insight_days [--reopen FROM [TO]]``: the report's daily rollup by hand."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from loyalty.services import insight


class Command(BaseCommand):
    help = (
        "Store the report's figures of every closed day of the last 400 not stored yet (what the "
        "close-insight-days beat job does). --reopen FROM [TO] (YYYY-MM-DD, program time zone) first "
        "forgets those days, e.g. after rows were corrected in the database by hand."
    )

    def add_arguments(self, parser):
        parser.add_argument("--reopen", nargs="+", metavar="DAY", help="FROM [TO], inclusive.")

    def handle(self, *args, reopen: list[str] | None, **options):
        if reopen:
            if len(reopen) > 2:
                raise CommandError("--reopen takes FROM and optionally TO.")
            try:
                first, last = (dt.date.fromisoformat(v) for v in (reopen[0], reopen[-1]))
            except ValueError as exc:
                raise CommandError("Days as YYYY-MM-DD.") from exc
            tz = ZoneInfo(settings.TIME_ZONE)
            insight.reopen_days(
                dt.datetime.combine(first, dt.time.min, tzinfo=tz), dt.datetime.combine(last, dt.time.min, tzinfo=tz)
            )
            self.stderr.write(f"Reopened {first}..{last}.")
        self.stdout.write(f"{insight.close_recent_days()} days stored.")
