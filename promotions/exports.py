"""Streamed CSV exports of codes: a batch, or whatever the admin's code list is filtered to.

Rows are read with ``iterator(chunk_size=...)`` (a server-side cursor on PostgreSQL) and written
as they come, so a million codes never sit in memory and the response starts at once.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils.text import get_valid_filename

from .models import Code

CHUNK_SIZE = 5000
HEADER = [
    "code",
    "status",
    "uses",
    "max_uses",
    "campaign",
    "batch",
    "assigned_member",
    "valid_from",
    "valid_until",
    "created_at",
]
_COLUMNS = (
    "code",
    "status",
    "uses",
    "max_uses",
    "campaign__name",
    "batch_id",
    "assigned_member__external_id",
    "valid_from",
    "valid_until",
    "created_at",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write() hands the line back, for csv.writer."""

    def write(self, value: str) -> str:
        return value


def _text(value: str | None) -> str:
    """Free text (campaign names) cannot start a spreadsheet formula."""
    value = value or ""
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def _when(value) -> str:
    return value.isoformat() if value else ""


def code_rows(queryset: QuerySet[Code], *, chunk_size: int = CHUNK_SIZE) -> Iterator[list]:
    """The header, then one row per code in the queryset's order."""
    yield HEADER
    rows = queryset.values_list(*_COLUMNS).iterator(chunk_size=chunk_size)
    for code, status, uses, max_uses, campaign, batch, member, valid_from, valid_until, created_at in rows:
        yield [
            code,
            status,
            uses,
            max_uses,
            _text(campaign),
            batch or "",
            member or "",
            _when(valid_from),
            _when(valid_until),
            _when(created_at),
        ]


def csv_lines(rows: Iterable[list]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


def stream_codes_csv(queryset: QuerySet[Code], *, filename: str = "codes.csv") -> StreamingHttpResponse:
    """A streamed CSV download of the codes in ``queryset`` (ordered by -id unless already ordered)."""
    if not queryset.ordered:
        queryset = queryset.order_by("-id")
    response = StreamingHttpResponse(csv_lines(code_rows(queryset)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{get_valid_filename(filename)}"'
    response["Cache-Control"] = "no-store"
    return response
