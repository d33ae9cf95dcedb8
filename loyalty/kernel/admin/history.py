"""History pages that behave like Django's own, and change forms saved through a service.

Services are outer operations with ``@transaction.atomic(durable=True)``: they open the
transaction themselves and refuse to run inside another one. Django's ``changeform_view`` and
``delete_view`` wrap the whole request in ``transaction.atomic``, so a ModelAdmin whose save (or
delete) calls a service uses ``ServiceSaveMixin``, which runs those views without that wrapper: the
service's own transaction is the boundary, and the admin's log entry is written after it commits.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.options import csrf_protect_m
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.http import Http404, HttpResponseRedirect
from simple_history.admin import SimpleHistoryAdmin

from .lists import ChangeListGuardMixin


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


class DurableSaveMixin:
    """The change form and the delete page without Django's ``transaction.atomic`` around them.

    For a ModelAdmin whose ``save_model``/``save_related``/``delete_model`` calls a service: the
    service is durable (``@transaction.atomic(durable=True)``), opens its own transaction and would
    raise inside the admin's. Everything else these views do is reading and rendering.
    """

    @csrf_protect_m
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return self._changeform_view(request, object_id, form_url, extra_context)

    @csrf_protect_m
    def delete_view(self, request, object_id, extra_context=None):
        return self._delete_view(request, object_id, extra_context)


class ServiceSaveMixin(DurableSaveMixin):
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
