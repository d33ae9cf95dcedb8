"""Building blocks shared by the loyalty admin classes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import BadRequest, FieldDoesNotExist, FieldError, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connection, connections
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

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


class ReadOnlyAdminMixin(ChangeListGuardMixin):
    """View only: rows are written by services (append-only or derived), never in the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class HistoryAdmin(ChangeListGuardMixin, SimpleHistoryAdmin):
    """SimpleHistoryAdmin whose history pages behave like Django's own pages.

    django-simple-history filters by the raw URL segment, so ``/member/abc/history/`` raised a
    ValueError (a server error); now it redirects with "does not exist", as the change page does.
    And a historical version is shown read-only to whoever may not change the object.
    """

    def _ids_can_exist(self, object_id, version_id=None) -> bool:
        pk = self.model._meta.pk
        column = pk.target_field if pk.is_relation else pk  # a one-to-one primary key: the target's type
        try:
            ids = [(pk.to_python(unquote(object_id)), column.get_internal_type())]
            if version_id is not None:
                ids.append((int(version_id), "AutoField"))
        except (ValidationError, ValueError, TypeError):
            return False
        for value, internal_type in ids:
            low, high = connection.ops.integer_field_ranges.get(internal_type, (None, None))
            if isinstance(value, int) and ((low is not None and value < low) or (high is not None and value > high)):
                return False
        return True

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is None or self.has_change_permission(request, obj):
            return readonly
        # A user who may not change the object sees every field read-only, as Django's change page
        # shows it; the page for one historical version builds its form from the fieldsets and
        # would otherwise fail on a non-editable field such as created_at.
        if self.fieldsets:
            shown = flatten_fieldsets(self.fieldsets)
        else:
            shown = self.fields or [f.name for f in self.model._meta.fields if not f.auto_created]
        return [*readonly, *(name for name in shown if name not in readonly)]

    def history_view(self, request, object_id, extra_context=None):
        if not self._ids_can_exist(object_id):
            return self._get_obj_does_not_exist_redirect(request, self.model._meta, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if not self._ids_can_exist(object_id, version_id):
            raise Http404
        return super().history_form_view(request, object_id, version_id, extra_context)


class ServiceManagedHistoryAdmin(HistoryAdmin):
    """History is shown, but never reverted: a revert would bypass the services' checks."""

    def revert_disabled(self, request, obj=None):
        return True

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied("Reverting is disabled; use the member page's actions.")
        return super().history_form_view(request, object_id, version_id, extra_context)


class ServiceSaveMixin:
    """For admin forms saved through a service instead of ``obj.save()``.

    ``save_model`` (or ``save_related``) calls the service; when it refuses, ``refuse_save`` remembers
    the error on the request and shows ``message``. The rest of the admin's save then stands down:
    no ``save_related``, no log entry, and the response redirects back to the form. When the service
    saved, ``adopt_saved`` copies the saved row onto the admin's object so the admin treats it as saved.
    """

    def refuse_save(self, request, exc, message: str | None = None) -> None:
        request._service_save_error = exc
        self.message_user(request, exc.detail if message is None else message, messages.ERROR)

    def save_refused(self, request) -> bool:
        return getattr(request, "_service_save_error", None) is not None

    @staticmethod
    def adopt_saved(obj, saved) -> None:
        for field in obj._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False
        obj._state.db = saved._state.db

    def save_related(self, request, form, formsets, change):
        if not self.save_refused(request):
            super().save_related(request, form, formsets, change)

    def log_addition(self, request, obj, message):
        if not self.save_refused(request):
            return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        if not self.save_refused(request):
            return super().log_change(request, obj, message)

    def response_add(self, request, obj, post_url_continue=None):
        if self.save_refused(request):
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if self.save_refused(request):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)


def admin_link(obj, label=None, *, model_name: str | None = None, pk=None):
    """A link to an object's admin change page (``pk``/``model_name`` avoid loading the object)."""
    if obj is None and pk is None:
        return "-"
    pk = pk if pk is not None else obj.pk
    model_name = model_name or obj._meta.model_name
    url = reverse(f"admin:loyalty_{model_name}_change", args=[pk])
    return format_html('<a href="{}">{}</a>', url, label if label is not None else obj)


def signed(amount: int) -> str:
    return f"{amount:+,d}"


@dataclass(frozen=True)
class PageAction:
    """A button or form on an admin page that changes something (not in the list's action menu),
    declared on its ModelAdmin as ``page_actions`` (or on a member panel) with the permissions
    its view checks. docs/roles.md lists them per role (``manage.py roles_doc``), and
    tests/test_permission_matrix.py posts to each as every role to prove the declaration."""

    url_name: str  # without the "admin:" namespace
    label: str
    perms: tuple[str, ...]
    on_object: bool = True  # the URL takes the object's id; otherwise ``kwargs``
    kwargs: tuple[tuple[str, str], ...] = ()
