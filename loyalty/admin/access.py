"""The API keys screen: create a key (shown once, on the page that answers the form), list them
by name, prefix, owner, created, last used, expiry and status, revoke with a reason.

Nothing here can show a key again: only its digest is stored (``loyalty.models.access``).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from .. import services
from ..exceptions import DomainError
from ..forms import ApiKeyCreateForm, ApiKeyRevokeForm
from ..models import ApiKey
from .base import PageAction, ServiceManagedHistoryAdmin, ServiceSaveMixin

MAX_REVOKE = 500


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return ApiKey.Status.choices

    def queryset(self, request, queryset):
        now = timezone.now()
        live = Q(revoked_at__isnull=True)
        if self.value() == ApiKey.Status.ACTIVE:
            return queryset.filter(live & (Q(expires_at__isnull=True) | Q(expires_at__gt=now)))
        if self.value() == ApiKey.Status.EXPIRED:
            return queryset.filter(live & Q(expires_at__lte=now))
        if self.value() == ApiKey.Status.REVOKED:
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(ServiceSaveMixin, ServiceManagedHistoryAdmin):
    add_form = ApiKeyCreateForm
    list_display = ("name", "prefix_shown", "owner", "created_at", "last_used_at", "expires_at", "status_shown")
    list_display_links = ("name",)
    list_filter = (StatusFilter, "created_at")
    list_select_related = ("owner",)
    search_fields = ("name", "prefix", "owner__username")
    search_help_text = "Name, the key's first characters (prefix), or the owner's username."
    autocomplete_fields = ("owner",)
    ordering = ("-created_at", "-id")
    actions = ["revoke_selected"]
    page_actions = (PageAction("loyalty_apikey_revoke", "Revoke… (key page)", ("loyalty.revoke_apikey",)),)
    fields = (
        "name",
        "owner",
        "prefix_shown",
        "status_shown",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "revoked_by",
        "revoke_reason",
    )
    readonly_fields = fields
    change_form_template = "admin/loyalty/apikey/change_form.html"

    # --- columns ---------------------------------------------------------------------------------
    @admin.display(description="Prefix", ordering="prefix")
    def prefix_shown(self, obj):
        return format_html("<code>{}…</code>", obj.prefix)

    @admin.display(description="Status")
    def status_shown(self, obj):
        status = obj.status
        return format_html('<span class="apikey-status apikey-{}">{}</span>', status, ApiKey.Status(status).label)

    # --- permissions: keys are created and revoked, never edited or deleted ----------------------
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request, obj=None):
        return request.user.has_perm("loyalty.revoke_apikey")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    # --- the add page: the key is shown on the answer to the form, once ------------------------
    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
            kwargs["fields"] = ["owner", "name", "expires_in_days"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ("owner", "name", "expires_in_days") if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            created = services.create_api_key(
                owner=data["owner"],
                name=data["name"],
                expires_in_days=data.get("expires_in_days"),
                actor=request.user,
                reason="Created in the admin",
            )
        except DomainError as exc:
            self.refuse_save(request, exc)
            return
        self.adopt_saved(obj, created.api_key)
        request._new_api_key = created.key  # on this request only: never in a session, message or log

    def response_add(self, request, obj, post_url_continue=None):
        key = getattr(request, "_new_api_key", None)
        if self.save_refused(request) or key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "opts": self.opts,
            "api_key": obj,
            "key": key,
            "changelist_url": reverse("admin:loyalty_apikey_changelist"),
            "change_url": reverse("admin:loyalty_apikey_change", args=[obj.pk]),
        }
        request.current_app = self.admin_site.name
        response = TemplateResponse(request, "admin/loyalty/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    # --- revoking: a bulk action and a button on the key's page, both with a reason --------------
    def get_urls(self):
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<path:object_id>/revoke/", self.admin_site.admin_view(self.revoke_view), name=f"{info}_revoke"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and obj.revoked_at is None and self.has_revoke_permission(request, obj):
            extra_context["revoke_url"] = reverse("admin:loyalty_apikey_revoke", args=[obj.pk])
        return super().change_view(request, object_id, form_url, extra_context)

    def _revoke(self, request, keys, reason: str) -> int:
        done = 0
        for key in keys:
            try:
                services.revoke_api_key(api_key=key, actor=request.user, reason=reason)
            except DomainError as exc:
                self.message_user(request, f"{key}: {exc.detail}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"Revoked {done} API key{'s' if done != 1 else ''}.", messages.SUCCESS)
        return done

    def _reason_page(self, request, keys, form, *, action: str = ""):
        context = {
            **self.admin_site.each_context(request),
            "title": "Revoke API keys" if len(keys) != 1 else "Revoke API key",
            "opts": self.opts,
            "keys": keys,
            "form": form,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/loyalty/apikey/revoke.html", context)

    @admin.action(description="Revoke selected API keys…", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        keys = list(queryset.select_related("owner")[: MAX_REVOKE + 1])
        if len(keys) > MAX_REVOKE:
            self.message_user(request, f"Select at most {MAX_REVOKE} keys at a time.", messages.ERROR)
            return None
        form = ApiKeyRevokeForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            self._revoke(request, keys, form.cleaned_data["reason"])
            return None
        return self._reason_page(request, keys, form, action="revoke_selected")

    def revoke_view(self, request, object_id):
        key = self.get_object(request, unquote(object_id))
        if key is None:
            raise Http404("No such API key.")
        if not self.has_revoke_permission(request, key):
            raise PermissionDenied
        form = ApiKeyRevokeForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            self._revoke(request, [key], form.cleaned_data["reason"])
            return HttpResponseRedirect(reverse("admin:loyalty_apikey_change", args=[key.pk]))
        return self._reason_page(request, [key], form)
