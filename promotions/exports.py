"""Streamed CSV exports of codes: a batch, or whatever the admin's code list is filtered to.

Rows are read with ``iterator(chunk_size=...)`` (a server-side cursor on PostgreSQL) and written
as they come (``loyalty.exports.stream_csv``, which also keeps any cell from becoming a spreadsheet
formula), so a million codes never sit in memory and the response starts at once.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from loyalty.exports import stream_csv

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


def code_rows(queryset: QuerySet[Code], *, chunk_size: int = CHUNK_SIZE) -> Iterator[list]:
    """The header, then one row per code in the queryset's order."""
    yield HEADER
    yield from queryset.values_list(*_COLUMNS).iterator(chunk_size=chunk_size)


def stream_codes_csv(queryset: QuerySet[Code], *, filename: str = "codes.csv") -> StreamingHttpResponse:
    """A streamed CSV download of the codes in ``queryset`` (ordered by -id unless already ordered)."""
    if not queryset.ordered:
        queryset = queryset.order_by("-id")
    return stream_csv(code_rows(queryset), filename=filename)
