"""Change lists that stay fast and safe at millions of rows: counting, guarded lookups, exact
search, read-only screens, exports of a filtered list, and the input/date filters."""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import BadRequest, FieldDoesNotExist, FieldError, ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from loyalty.replica import reporting


class FastCountPaginator(Paginator):
    """A paginator that never counts a million rows.

    Unfiltered lists on PostgreSQL use the planner's row estimate; everything else is counted
    exactly up to ``cap`` rows (``SELECT COUNT(*) FROM (... LIMIT cap)``), so a broad filter costs
    at most ``cap`` index entries. Past the cap the list simply stops paginating.
    """

    cap = 100_000

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        connection = connections[qs.db]
        if connection.vendor == "postgresql" and not qs.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [qs.model._meta.db_table]
                )
                row = cursor.fetchone()
            if row and row[0] and row[0] > self.cap:
                return int(row[0])
        return qs.order_by()[: self.cap].count()


class ChangeListGuardMixin:
    """A lookup from the URL that only fails when its SQL is built (``?created_at__year=10**20``:
    Django allows any lookup on a local field) redirects with "?e=1" like other bad lookups,
    instead of a server error. The list is counted and fetched while the ChangeList is built."""

    def get_changelist_instance(self, request):
        try:
            return super().get_changelist_instance(request)  # counts and fetches the page
        except (OverflowError, ValueError) as exc:  # a year beyond 1..9999 and the like
            raise IncorrectLookupParameters(exc) from exc


class ChangeListExportMixin:
    """What an export of a change list writes: every row its filters, search and ordering select
    (never one page of them: ``?p=`` and ``?all`` are ignored), without counting.

    A filter the list does not know (``?foo=bar``) or a lookup that fails when its SQL is built
    (``?created_at__year=0``) is a 400 before anything streams, never a server error halfway
    through a download. django-import-export's export calls this too (``get_export_queryset``).
    """

    def get_export_queryset(self, request):
        base = self.get_changelist(request)

        class ExportChangeList(base):
            def get_filters_params(self, params=None):
                result = super().get_filters_params(params)
                result.pop("_changelist_filters", None)  # the change page's "back to the list" memory
                return result

            def get_results(self, request):  # no count, no page
                pass

        list_display = self.get_list_display(request)
        try:
            changelist = ExportChangeList(
                request,
                self.model,
                list_display,
                self.get_list_display_links(request, list_display),
                self.get_list_filter(request),
                self.date_hierarchy,
                self.get_search_fields(request),
                self.get_list_select_related(request),
                self.list_per_page,
                self.list_max_show_all,
                self.list_editable,
                self,
                self.get_sortable_by(request),
                self.search_help_text,
            )
            queryset = reporting(changelist.queryset)  # an export only reads: the replica if any
            queryset.query.get_compiler(queryset.db).as_sql()  # fails now, not halfway through the file
        except (IncorrectLookupParameters, FieldError, ValidationError, OverflowError, ValueError) as exc:
            raise BadRequest(f"These filters cannot be exported: {exc}") from exc
        return queryset


class BigListMixin(ChangeListGuardMixin):
    """Settings for tables that grow to millions of rows."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts are one COUNT per filter choice
    paginator = FastCountPaginator
    list_per_page = 50

    def get_queryset(self, request):
        """A list shown (GET) reads the replica when there is one (loyalty/replica.py); a list
        POST (an action: read, then written) and the change page stay on the primary."""
        queryset = super().get_queryset(request)
        url_name = getattr(getattr(request, "resolver_match", None), "url_name", "") or ""
        if request.method == "GET" and url_name.endswith("_changelist"):
            return reporting(queryset)
        return queryset


class ExactSearchMixin:
    """Search by exact values on indexed columns (plus the primary key when the term is a number).

    Django's default search is ``icontains`` across every field: a full scan on a big table.
    ``exact_search_fields`` are compared with the whole (stripped) term, ``id_search_fields`` too
    when the term is a number.
    """

    exact_search_fields: tuple[str, ...] = ()
    id_search_fields: tuple[str, ...] = ("pk",)
    # A term matches at most this many related rows (e.g. members with one external id): more is
    # not an exact search.
    related_match_limit = 1000

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        q = Q(pk__in=[])
        for field in self.exact_search_fields:
            q |= self._exact_q(queryset, field, term)
        if term.isdigit() and len(term) < 19:
            for field in self.id_search_fields:
                q |= Q(**{field: int(term)})
        return queryset.filter(q), False

    def _exact_q(self, queryset, field: str, term: str) -> Q:
        """``relation__column = term`` is resolved to the related ids first (one indexed query).

        An OR between a column of this table and a column of a joined one cannot be answered from
        the indexes: at 1M rows PostgreSQL scanned the whole join (2.4 s for the ledger by member,
        3.3 s for purchases by bill). ``relation_id IN (ids) OR column = term`` is a BitmapOr of
        two index scans (docs/performance.md).
        """
        relation, sep, column = field.partition("__")
        if not sep or "__" in column:
            return Q(**{field: term})
        try:
            related = queryset.model._meta.get_field(relation)
        except FieldDoesNotExist:  # pragma: no cover - a misconfigured admin
            return Q(**{field: term})
        if not (related.many_to_one or related.one_to_one) or related.related_model is None:
            return Q(**{field: term})
        target = related.target_field.attname
        try:
            ids = list(
                related.related_model._default_manager.using(queryset.db)
                .filter(**{column: term})
                .values_list(target, flat=True)[: self.related_match_limit]
            )
        except (ValueError, ValidationError):  # the term cannot be a value of that column
            return Q(pk__in=[])
        return Q(**{f"{relation}__in": ids})


class NoDeleteMixin:
    """Rows are never deleted in the admin: the ledger, history and other rows refer to them."""

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class ViewOnlyMixin(NoDeleteMixin):
    """No adding, changing or deleting here: the rows are written by services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class LastErrorColumnMixin:
    """An ``error`` list column: the first 80 characters of ``last_error``, the whole on hover."""

    @admin.display(description="Last error")
    def error(self, obj):
        return format_html('<span title="{}">{}</span>', obj.last_error, obj.last_error[:80]) if obj.last_error else ""


class ReadOnlyAdminMixin(ViewOnlyMixin, ChangeListGuardMixin):
    """View only: rows are written by services (append-only or derived), never in the admin."""


class ReadOnlyInline(ViewOnlyMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True
    # The relations its columns show, loaded with the rows (one query, however many rows).
    select_related: tuple[str, ...] = ()

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset.select_related(*self.select_related) if self.select_related else queryset


class InputFilter(admin.ListFilter):
    """A filter with text/number/date inputs instead of a list of choices: exact values and ranges
    on indexed columns, with no ``SELECT DISTINCT`` over a million rows to build the choices."""

    template = "admin/kernel/input_filter.html"
    # (GET parameter, label, input type)
    inputs: tuple[tuple[str, str, str], ...] = ()
    # GET parameter -> ORM lookup, for the default ``apply`` (e.g. {"amount_min": "amount__gte"})
    lookups_by_input: dict[str, str] = {}

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.errors: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        for name, _label, _type in self.inputs:
            if name in params:
                raw = params.pop(name)
                raw = (raw[-1] if isinstance(raw, list) else raw).strip()
                if not raw:
                    continue
                self.used_parameters[name] = raw
                try:
                    self.values[name] = self.parse(name, raw)
                except ValueError as exc:
                    self.errors[name] = str(exc)

    def parse(self, name: str, raw: str) -> Any:
        return raw

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return [name for name, _label, _type in self.inputs]

    def choices(self, changelist):
        own = set(self.expected_parameters())
        hidden = [
            (key, value)
            for key, values in changelist.filter_params.items()
            if key not in own and key != "p"
            for value in values
        ]
        yield {
            "hidden": hidden,
            "active": bool(self.used_parameters),
            "clear_url": changelist.get_query_string(remove=list(own)),
            "fields": [
                {
                    "name": name,
                    "label": label,
                    "type": kind,
                    "step": "0.01" if kind == "number" else "",
                    "value": self.used_parameters.get(name, ""),
                    "error": self.errors.get(name, ""),
                }
                for name, label, kind in self.inputs
            ],
        }

    def queryset(self, request, queryset):
        filters = {k: v for k, v in self.values.items() if k not in self.errors}
        return self.apply(queryset, filters) if filters else queryset

    def apply(self, queryset, values: dict[str, Any]):
        """Filter by the table ``lookups_by_input``; override for anything it cannot say."""
        return queryset.filter(**{self.lookups_by_input[name]: value for name, value in values.items()})


class CreatedWithinFilter(admin.SimpleListFilter):
    """Last 7/30/90 days: one range condition on the indexed created_at (no date_hierarchy scans)."""

    title = "created"
    parameter_name = "created_within"
    DAYS = {"1": 1, "7": 7, "30": 30, "90": 90}

    def lookups(self, request, model_admin):
        return [("1", "Last 24 hours"), ("7", "Last 7 days"), ("30", "Last 30 days"), ("90", "Last 90 days")]

    def queryset(self, request, queryset):
        days = self.DAYS.get(self.value() or "")
        if days:
            return queryset.filter(created_at__gte=timezone.now() - dt.timedelta(days=days))
        return queryset


class FastActionCheckboxMixin:
    """Django renders each row's checkbox through the form widget templates: about a third of a
    50-row page's render time. The same HTML, formatted directly."""

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj):
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select"'
            ' aria-label="Select this object for an action - {}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            obj,
        )
