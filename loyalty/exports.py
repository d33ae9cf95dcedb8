"""Every CSV/XLSX export goes through here, so no cell can become a spreadsheet formula.

``safe_cell`` is the one rule (OWASP "CSV injection"): text that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return gets a leading ``'``, so a spreadsheet shows it as text instead
of running it (``=HYPERLINK(...)`` in a member's name). Only text is touched: numbers, dates and
empty cells pass as they are, so a points column with -100 still reads -100 (in CSV too, where
every value is written as a string: what decides is the value's type before it is written).

The streamed exports (``stream_csv``) and django-import-export's (``SafeExportResource``) both
apply it to every cell.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import connections
from django.db.models import CharField, DateField, DateTimeField, F, Func, QuerySet, TextField
from django.db.models.constants import LOOKUP_SEP
from django.http import StreamingHttpResponse
from django.utils.text import get_valid_filename
from import_export import resources

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` as a spreadsheet may read it: text that could start a formula is quoted."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_value(value: Any) -> Any:
    """One cell of a streamed CSV: safe text, ISO 8601 times, empty for None."""
    value = safe_cell(value)
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


class _Echo:
    """A file-like object whose write() hands the line back, for csv.writer."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """CSV text, one line per row, every cell through ``csv_value`` (the header too)."""
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow([csv_value(v) for v in row])


def stream_csv(rows: Iterable[Iterable[Any]], *, filename: str) -> StreamingHttpResponse:
    """A streamed CSV download: rows are written as they come (a server-side cursor upstream),
    so any size works and nothing sits in memory."""
    return stream_csv_lines(csv_lines(rows), filename=filename)


def stream_csv_lines(lines: Iterable[str] | Iterable[bytes], *, filename: str) -> StreamingHttpResponse:
    """A streamed CSV download of ready CSV text (``csv_lines`` or ``copy_csv_lines``)."""
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{get_valid_filename(filename)}"'
    response["Cache-Control"] = "no-store"
    return response


# --- PostgreSQL: the same CSV from COPY ... TO STDOUT ---------------------------------------------


class _SafeText(Func):
    """``safe_cell`` in SQL: a leading ``'`` before a formula start; '' as NULL (an empty cell, as
    the Python writer writes it, where COPY would write ``""``)."""

    template = (
        "CASE WHEN %(expressions)s ~ '^[-=+@\\t\\r]' THEN '''' || %(expressions)s ELSE NULLIF(%(expressions)s, '') END"
    )
    output_field = TextField()


class _IsoDate(Func):
    """``date.isoformat()`` in SQL."""

    template = "(to_json(%(expressions)s) #>> '{}')"
    output_field = TextField()


class _IsoTime(Func):
    """``datetime.isoformat()`` in SQL, of the UTC times Django reads: six digits of microseconds,
    or none when they are zero (to_json would drop trailing zeros: .49768 for .497680)."""

    template = (
        "CASE WHEN date_trunc('second', %(expressions)s) = %(expressions)s"
        " THEN to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')"
        " ELSE to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"') END"
    )
    output_field = TextField()


def _field_of(queryset: QuerySet, lookup: str):
    model, field = queryset.model, None
    for part in lookup.split(LOOKUP_SEP):
        field = model._meta.pk if part == "pk" else model._meta.get_field(part)
        model = field.related_model or model
    return field


def copy_csv_lines(queryset: QuerySet, header: list[str], lookups: list[str]) -> Iterator[bytes] | None:
    """The CSV of ``queryset.values_list(*lookups)`` written by PostgreSQL itself (``COPY (query)
    TO STDOUT``), every cell neutralised as ``csv_value`` does: several times faster than the Python
    writer (issue 18, docs/performance.md). None on another database (the caller writes the CSV in
    Python). Lines end with COPY's ``\\n``, the header's too."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    columns: dict[str, Any] = {}
    for i, lookup in enumerate(lookups):
        field = _field_of(queryset, lookup)
        if isinstance(field, CharField | TextField):
            columns[f"c{i}"] = _SafeText(F(lookup))
        elif isinstance(field, DateTimeField):
            columns[f"c{i}"] = _IsoTime(F(lookup))
        elif isinstance(field, DateField):
            columns[f"c{i}"] = _IsoDate(F(lookup))
        else:
            columns[f"c{i}"] = F(lookup)
    query = queryset.annotate(**columns).values_list(*columns).query
    sql, params = query.get_compiler(queryset.db).as_sql()
    return _copy_lines(queryset.db, header, sql, params)


COPY_BLOCK = 64 * 1024


def _copy_lines(db: str, header: list[str], sql: str, params: Any) -> Iterator[bytes]:
    yield (next(csv_lines([header])).rstrip("\r\n") + "\n").encode()
    with connections[db].cursor() as cur, cur.cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)", params) as copy:
        buffer = bytearray()
        for chunk in copy:  # one row per chunk: passed on in ~64 KB blocks (bytes, never decoded)
            buffer += chunk
            if len(buffer) >= COPY_BLOCK:
                yield bytes(buffer)
                buffer.clear()
        if buffer:
            yield bytes(buffer)


class SafeExportResource(resources.ModelResource):
    """A django-import-export resource whose text cells go through ``safe_cell``.

    Whether a cell is text is decided by the value before import-export renders it (CSV renders
    numbers as strings too: "-100" of an integer column must stay -100)."""

    def export_field(self, field, instance, **kwargs):
        rendered = super().export_field(field, instance, **kwargs)
        method = getattr(self, field.get_dehydrate_method(self.get_field_name(field)), None)
        raw = rendered if callable(method) or not field.attribute else field.get_value(instance)
        return safe_cell(rendered) if isinstance(raw, str) else rendered
