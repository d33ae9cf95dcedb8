"""The raw bulk insert of generated codes (PostgreSQL COPY, with an ORM fallback elsewhere)."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from promotions.models import Code, CodeBatch

_NULL = "\\N"
_COPY_SPECIAL = frozenset("\\\t\n\r")  # what COPY's text format would need escaped


def _copy_value(value: object) -> str:
    if value is None:
        return _NULL
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _copy_text(batch: CodeBatch, rows: list[tuple[str, str, int | None]]) -> str:
    """The chunk as COPY text, one line per code, the columns every code shares formatted once
    (psycopg's write_row adapts each of the twelve values of every row in Python). Only for a
    pattern without tab, newline or backslash: its codes then need no escaping (the random part
    is letters and digits)."""
    now = timezone.now()
    head = f"{batch.campaign_id}\t{batch.pk}\t"
    middle = f"\tactive\t0\t{_copy_value(batch.max_uses)}\t"
    tail = "\t" + "\t".join(_copy_value(v) for v in (batch.release_at, batch.valid_until, now, now)) + "\n"
    return "".join(
        [f"{head}{code}\t{normalized}{middle}{_NULL if m is None else m}{tail}" for code, normalized, m in rows]
    )


def insert_codes(batch: CodeBatch, rows: list[tuple[str, str, int | None]]) -> int:
    """Insert, skipping codes that already exist anywhere (the unique index decides). Returns rows inserted.

    On PostgreSQL a chunk is first COPied straight into the table (collisions are astronomically rare
    in a pattern that passed the capacity check); if one collides, the chunk goes through a temp table
    and INSERT ... ON CONFLICT DO NOTHING instead.

    Building block: the caller holds the transaction.
    """
    if connection.vendor == "postgresql":
        columns = (
            "campaign_id, batch_id, code, normalized, status, uses, max_uses, assigned_member_id,"
            " valid_from, valid_until, created_at, updated_at"
        )
        try:
            with transaction.atomic(), connection.cursor() as cur:
                with cur.cursor.copy(f"COPY promotions_code ({columns}) FROM STDIN") as copy:
                    if _COPY_SPECIAL.isdisjoint(batch.pattern):
                        copy.write(_copy_text(batch, rows))
                    else:
                        now = timezone.now()
                        window = (batch.release_at, batch.valid_until, now, now)
                        for code, normalized, member in rows:
                            copy.write_row(
                                (batch.campaign_id, batch.pk, code, normalized, "active", 0, batch.max_uses, member)
                                + window
                            )
                return len(rows)
        except IntegrityError:
            pass  # a collision: fall back to the conflict-skipping path for this chunk
        with connection.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS promotions_new_codes "
                "(code varchar(64), normalized varchar(64), member_id bigint) ON COMMIT DELETE ROWS"
            )
            with cur.cursor.copy("COPY promotions_new_codes (code, normalized, member_id) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO promotions_code ({columns})"
                " SELECT %s, %s, code, normalized, 'active', 0, %s, member_id, %s, %s, now(), now()"
                " FROM promotions_new_codes ON CONFLICT (normalized) DO NOTHING",
                [batch.campaign_id, batch.pk, batch.max_uses, batch.release_at, batch.valid_until],
            )
            inserted = cur.rowcount
            cur.execute("TRUNCATE promotions_new_codes")
            return inserted
    before = Code.objects.filter(batch=batch).count()
    Code.objects.bulk_create(
        [
            Code(
                campaign_id=batch.campaign_id,
                batch=batch,
                code=c,
                normalized=n,
                max_uses=batch.max_uses,
                assigned_member_id=m,
                valid_from=batch.release_at,
                valid_until=batch.valid_until,
            )
            for c, n, m in rows
        ],
        ignore_conflicts=True,
        batch_size=2000,
    )
    return Code.objects.filter(batch=batch).count() - before
