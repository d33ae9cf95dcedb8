"""Export and import of redemptions (django-import-export + a two-phase, all-or-nothing import).

Export
    ``RedemptionResource`` (django-import-export) serves the admin's CSV/XLSX export of the
    filtered list; ``EXPORT_COLUMNS`` + ``stream_export`` serve the streamed CSV export of any size. Every cell of
    both goes through ``loyalty.exports.safe_cell`` (no spreadsheet formulas).

Import (two phases: validate every row and preview, then confirm)
    * Fulfillment updates from a shipping partner (``redemption_id, fulfillment_status,
      tracking_ref``): every row goes through ``services.change_fulfillment``.
    * Legacy redemptions from the old platform (``member_external_id, reward_external_id,
      quantity, points_spent, status, created_at, external_ref``): the points were spent on the
      old platform, so the rows are recorded WITHOUT a ledger movement by
      ``import_legacy_redemption`` below, the one documented write path outside ``services``.
      (It belongs in ``redemptions.services.import_legacy_redemption``; see the module's notes.)

Both imports run every row inside one transaction. A dry run (the preview) rolls it back; the
confirmed run commits only when every row succeeded, otherwise it rolls back and names the rows.
Services run for real in the dry run, so the preview reports exactly what the import would.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.core import signing
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from import_export import fields
from import_export.formats import base_formats

from loyalty.exceptions import DomainError, InvalidInput
from loyalty.exports import SafeExportResource, copy_csv_lines, stream_csv, stream_csv_lines
from loyalty.kernel import unit_of_work
from loyalty.models import Member, Reward

from . import services
from .models import Redemption

# --- export ----------------------------------------------------------------------------------

# (column header, ORM lookup) for both exports.
EXPORT_COLUMNS: list[tuple[str, str]] = [
    ("id", "id"),
    ("kind", "kind"),
    ("member_external_id", "member__external_id"),
    ("member_email", "member__email"),
    ("reward_external_id", "reward__external_id"),
    ("reward", "reward__name"),
    ("quantity", "quantity"),
    ("points_spent", "points_spent"),
    ("points_returned", "points_returned"),
    ("status", "status"),
    ("award_status", "award_status"),
    ("approval_status", "approval_status"),
    ("fulfillment_status", "fulfillment_status"),
    ("tracking_ref", "tracking_ref"),
    ("issued_code", "issued_code__code"),
    ("channel", "channel"),
    ("external_ref", "external_ref"),
    ("created_at", "created_at"),
]


class RedemptionResource(SafeExportResource):
    """The admin's CSV/XLSX export (filtered list). Export only: imports use the classes below."""

    member_external_id = fields.Field(attribute="member__external_id", column_name="member_external_id")
    member_email = fields.Field(attribute="member__email", column_name="member_email")
    reward_external_id = fields.Field(attribute="reward__external_id", column_name="reward_external_id")
    reward = fields.Field(attribute="reward__name", column_name="reward")
    issued_code = fields.Field(attribute="issued_code__code", column_name="issued_code")

    class Meta:
        model = Redemption
        fields = [name for name, _ in EXPORT_COLUMNS]
        export_order = [name for name, _ in EXPORT_COLUMNS]

    def import_data(self, *args, **kwargs):  # pragma: no cover - guarded: writes go through services
        raise NotImplementedError("Redemptions are imported through redemptions.resources' two-phase imports.")


def export_rows(queryset: QuerySet[Redemption], *, chunk_size: int = 2000) -> Iterator[list]:
    """The header, then one row per redemption: ``values_list`` + ``iterator`` (a server-side cursor
    on PostgreSQL), never the whole list in memory."""
    yield [name for name, _ in EXPORT_COLUMNS]
    lookups = [lookup for _, lookup in EXPORT_COLUMNS]
    yield from queryset.values_list(*lookups).iterator(chunk_size=chunk_size)


def stream_export(queryset: QuerySet[Redemption], *, filename: str):
    """The streamed CSV of any size (every cell through ``loyalty.exports.safe_cell``, in SQL by
    COPY on PostgreSQL)."""
    copied = copy_csv_lines(queryset, [name for name, _ in EXPORT_COLUMNS], [lookup for _, lookup in EXPORT_COLUMNS])
    if copied is not None:
        return stream_csv_lines(copied, filename=filename)
    return stream_csv(export_rows(queryset), filename=filename)


# --- parsing uploaded files ------------------------------------------------------------------

MAX_ROWS = 5000


class FileError(Exception):
    """The file as a whole cannot be read (format, header, size)."""


def _norm_header(name: Any) -> str:
    return "_".join(str(name or "").strip().lower().replace("-", " ").split())


def read_rows(upload, *, columns: list[str], aliases: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Rows of an uploaded CSV or XLSX file as dicts of the expected ``columns`` (strings, stripped).

    Parsing uses django-import-export's formats (tablib)."""
    name = (getattr(upload, "name", "") or "").lower()
    raw = upload.read()
    try:
        if name.endswith(".xlsx"):
            dataset = base_formats.XLSX().create_dataset(raw)
        else:
            text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
            dataset = base_formats.CSV().create_dataset(text)
    except UnicodeDecodeError as exc:
        raise FileError("The file is not UTF-8 text; save it as CSV UTF-8 or XLSX.") from exc
    except Exception as exc:
        raise FileError(f"The file could not be read: {exc}") from exc
    aliases = aliases or {}
    headers = [aliases.get(_norm_header(h), _norm_header(h)) for h in (dataset.headers or [])]
    missing = [c for c in columns if c not in headers]
    if missing:
        raise FileError(f"Missing column(s): {', '.join(missing)}. Expected: {', '.join(columns)}.")
    if len(dataset) > MAX_ROWS:
        raise FileError(f"The file has {len(dataset)} rows; import at most {MAX_ROWS} at a time.")
    index = {c: headers.index(c) for c in columns}
    rows = []
    for values in dataset:
        if all(v is None or str(v).strip() == "" for v in values):
            continue  # blank line
        row = {}
        for c, i in index.items():
            v = values[i] if i < len(values) else None
            if isinstance(v, dt.datetime):
                v = v.isoformat()
            elif isinstance(v, float) and v.is_integer():
                v = int(v)
            row[c] = "" if v is None else str(v).strip()
        rows.append(row)
    if not rows:
        raise FileError("The file has no rows.")
    return rows


def sign_rows(rows: list[dict[str, str]], *, kind: str) -> str:
    """The parsed rows, signed, for the confirm step (stateless: any web worker can confirm)."""
    return signing.dumps(rows, salt=f"redemptions-import:{kind}", compress=True)


def unsign_rows(token: str, *, kind: str) -> list[dict[str, str]]:
    return signing.loads(token, salt=f"redemptions-import:{kind}", max_age=3600)


# --- results ---------------------------------------------------------------------------------


@dataclass
class RowResult:
    line: int  # the row's line in the file (the header is line 1)
    values: dict[str, str]
    outcome: str = ""
    error: str = ""


@dataclass
class ImportResult:
    kind: str
    dry_run: bool
    rows: list[RowResult] = field(default_factory=list)
    applied: int = 0

    @property
    def errors(self) -> list[RowResult]:
        return [r for r in self.rows if r.error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error_lines(self) -> str:
        return "; ".join(f"row {r.line}: {r.error}" for r in self.errors)


def _int(value: str, name: str, *, minimum: int = 0) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a whole number, not {value!r}.") from None
    if number < minimum:
        raise InvalidInput(f"{name} must be at least {minimum}.")
    return number


def _run(kind: str, rows: list[dict[str, str]], *, dry_run: bool, apply_row) -> ImportResult:
    """Apply every row in one transaction; roll everything back on a dry run or any failure.

    The file is a unit of work (``loyalty.kernel.unit_of_work``): the row's service joins it
    instead of committing on its own, and each row is a nested unit (a savepoint), so a refused
    row undoes only itself while later rows are still checked."""
    result = ImportResult(kind=kind, dry_run=dry_run)
    with unit_of_work(f"{kind} import"):
        for number, values in enumerate(rows, start=2):
            row = RowResult(line=number, values=values)
            result.rows.append(row)
            try:
                with unit_of_work(f"{kind} import, line {number}"):
                    row.outcome = apply_row(values, number)
            except DomainError as exc:
                row.error = exc.detail
        if dry_run or not result.ok:
            transaction.set_rollback(True)
        else:
            result.applied = len(result.rows)
    return result


# --- fulfillment updates from a shipping partner ---------------------------------------------

FULFILLMENT_COLUMNS = ["redemption_id", "fulfillment_status", "tracking_ref"]
FULFILLMENT_ALIASES = {"id": "redemption_id", "redemption": "redemption_id", "status": "fulfillment_status"}


def run_fulfillment_import(rows: list[dict[str, str]], *, actor, dry_run: bool) -> ImportResult:
    """Each row moves one redemption's fulfillment status through ``services.change_fulfillment``
    (so the transition table, permissions, history and emails all apply)."""
    ids = []
    for values in rows:
        with contextlib.suppress(ValueError):
            ids.append(int(values.get("redemption_id", "")))
    found = Redemption.objects.in_bulk(ids)
    labels = dict(Redemption.Fulfillment.choices)
    by_label = {label.lower(): code for code, label in labels.items()}

    def apply_row(values: dict[str, str], line: int) -> str:
        pk = _int(values.get("redemption_id", ""), "redemption_id", minimum=1)
        redemption = found.get(pk)
        if redemption is None:
            raise InvalidInput(f"Redemption {pk} does not exist.")
        target = values.get("fulfillment_status", "").strip().lower()
        target = by_label.get(target, target).replace(" ", "_")
        if target not in labels:
            raise InvalidInput(
                f"Unknown fulfillment status {values.get('fulfillment_status')!r}; one of {', '.join(labels)}."
            )
        tracking = values.get("tracking_ref", "")
        if len(tracking) > 100:
            raise InvalidInput("tracking_ref is longer than 100 characters.")
        before = Redemption.objects.filter(pk=pk).values_list("fulfillment_status", flat=True).first()
        services.change_fulfillment(
            redemption=redemption,
            fulfillment_status=target,
            tracking_ref=tracking,
            actor=actor,
            reason="Imported from the shipping partner's file",
        )
        return f"#{pk}: {before or 'none'} → {target}" + (f" ({tracking})" if tracking else "")

    return _run("fulfillment", rows, dry_run=dry_run, apply_row=apply_row)


# --- legacy redemptions ----------------------------------------------------------------------

LEGACY_COLUMNS = [
    "member_external_id",
    "reward_external_id",
    "quantity",
    "points_spent",
    "status",
    "created_at",
    "external_ref",
]
LEGACY_ALIASES = {"member": "member_external_id", "reward": "reward_external_id"}


def can_import_legacy(user) -> bool:
    return bool(user and user.has_perm("redemptions.import_redemptions"))


import_legacy_redemption = services.import_legacy_redemption


def _parse_when(value: str) -> dt.datetime:
    when = parse_datetime(value.replace("Z", "+00:00")) if value else None
    if when is None and value:
        day = parse_date(value)
        when = dt.datetime.combine(day, dt.time.min) if day else None
    if when is None:
        raise InvalidInput(f"created_at {value!r} is not a date or date-time (YYYY-MM-DD[ HH:MM[:SS]]).")
    if timezone.is_naive(when):
        when = timezone.make_aware(when)
    if when > timezone.now():
        raise InvalidInput("created_at is in the future.")
    return when


def run_legacy_import(rows: list[dict[str, str]], *, actor, dry_run: bool) -> ImportResult:
    members = Member.objects.in_bulk({r.get("member_external_id", "") for r in rows}, field_name="external_id")
    rewards = Reward.objects.select_related("metric").in_bulk(
        {r.get("reward_external_id", "") for r in rows}, field_name="external_id"
    )
    refs = [r.get("external_ref", "") for r in rows]
    existing = set(
        Redemption.objects.filter(external_ref__in=[x for x in refs if x]).values_list("external_ref", flat=True)
    )
    seen: dict[str, int] = {}
    statuses = dict(Redemption.Status.choices)
    by_label = {label.lower(): code for code, label in statuses.items()}

    def apply_row(values: dict[str, str], line: int) -> str:
        problems = []
        member = members.get(values.get("member_external_id", ""))
        if member is None:
            problems.append(f"member {values.get('member_external_id')!r} does not exist")
        reward = rewards.get(values.get("reward_external_id", ""))
        if reward is None:
            problems.append(f"reward {values.get('reward_external_id')!r} does not exist")
        status = values.get("status", "").strip().lower()
        status = by_label.get(status, status)
        if status not in statuses:
            problems.append(f"status {values.get('status')!r} is not one of {', '.join(statuses)}")
        ref = values.get("external_ref", "")
        if not ref:
            problems.append("external_ref is empty")
        elif ref in existing:
            problems.append(f"external_ref {ref!r} was already imported")
        elif ref in seen:
            problems.append(f"external_ref {ref!r} repeats row {seen[ref]}")
        else:
            seen[ref] = line
        parsed: dict[str, Any] = {}  # the typed columns, by the argument name of import_legacy_redemption
        for name, parse in [
            ("quantity", lambda v: _int(v, "quantity", minimum=1)),
            ("points_spent", lambda v: _int(v, "points_spent", minimum=0)),
            ("created_at", _parse_when),
        ]:
            try:
                parsed[name] = parse(values.get(name, ""))
            except DomainError as exc:
                problems.append(exc.detail.rstrip("."))
        quantity = parsed.get("quantity")
        if quantity is not None and quantity > services.MAX_QUANTITY:
            problems.append(f"quantity must be at most {services.MAX_QUANTITY}")
        if problems:
            raise InvalidInput("; ".join(problems) + ".")
        redemption = import_legacy_redemption(
            member=member, reward=reward, status=status, external_ref=ref, actor=actor, **parsed
        )
        points = parsed["points_spent"]
        return f"{member.external_id}: {quantity} × {reward.name}, {points} points, {status} (#{redemption.pk})"

    return _run("legacy", rows, dry_run=dry_run, apply_row=apply_row)


IMPORTS: dict[str, dict[str, Any]] = {
    "fulfillment": {
        "title": "Import fulfillment updates",
        "columns": FULFILLMENT_COLUMNS,
        "aliases": FULFILLMENT_ALIASES,
        "run": run_fulfillment_import,
        "help": "The shipping partner's file: one row per parcel event. Each row moves one redemption's "
        "fulfillment status (confirmed_paid → shipped → delivered / returned_to_sender / lost_in_transit).",
    },
    "legacy": {
        "title": "Import legacy redemptions",
        "columns": LEGACY_COLUMNS,
        "aliases": LEGACY_ALIASES,
        "run": run_legacy_import,
        "help": "Redemptions made on the old platform. Points were spent there, so no points move here. "
        "external_ref must be unique; created_at is YYYY-MM-DD[ HH:MM[:SS]] (local time unless an offset is given).",
    },
}


def sample_csv(columns: Iterable[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(list(columns))
    return out.getvalue()
