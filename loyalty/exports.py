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
    response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{get_valid_filename(filename)}"'
    response["Cache-Control"] = "no-store"
    return response


class SafeExportResource(resources.ModelResource):
    """A django-import-export resource whose text cells go through ``safe_cell``.

    Whether a cell is text is decided by the value before import-export renders it (CSV renders
    numbers as strings too: "-100" of an integer column must stay -100)."""

    def export_field(self, field, instance, **kwargs):
        rendered = super().export_field(field, instance, **kwargs)
        method = getattr(self, field.get_dehydrate_method(self.get_field_name(field)), None)
        raw = rendered if callable(method) or not field.attribute else field.get_value(instance)
        return safe_cell(rendered) if isinstance(raw, str) else rendered
