"""The API keys screen: create a key (shown once, on the page that answers the form), list them
by name, prefix, owner, created, last used, expiry and status, revoke with a reason.

Nothing here can show a key again: only its digest is stored (``loyalty.models.access``).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from loyalty.kernel.admin import (
    NoDeleteMixin,
    ObjectAction,
    ObjectActionsMixin,
    ServiceManagedHistoryAdmin,
    ServiceSaveMixin,
    bulk_action,
    perm_checker,
)

from .. import services
from ..exceptions import DomainError
from ..forms import ApiKeyCreateForm, ApiKeyRevokeForm
from ..models import ApiKey


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


REVOKE_INTRO = "A revoked key answers 401 from now on. This cannot be undone: give the integration a new key first."


class RevokeKey(ObjectAction):
    """ "Revoke…" on a key's page: a GET shows the confirm page with the reason."""

    name = "revoke"
    label = "Revoke…"
    roles_label = "Revoke… (key page)"
    permissions = ("loyalty.revoke_apikey",)
    view_permission = False
    form_class = ApiKeyRevokeForm
    confirm = True
    title = "Revoke API key"
    intro = REVOKE_INTRO
    form_id = "revoke-api-key-form"

    def available(self, request, key) -> bool:
        return key.revoked_at is None and self.has_permission(request, key)

    def confirm_context(self, request, key):
        return {"descriptions": [f"{key}, owner {key.owner}"]}

    def run(self, request, key, data):
        services.revoke_api_key(api_key=key, actor=request.user, reason=data["reason"])
        return "Revoked 1 API key."


@admin.register(ApiKey)
class ApiKeyAdmin(NoDeleteMixin, ObjectActionsMixin, ServiceSaveMixin, ServiceManagedHistoryAdmin):
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
    object_actions = (RevokeKey(),)
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

    has_revoke_permission = perm_checker("loyalty.revoke_apikey")

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
    revoke_selected = bulk_action(
        name="revoke_selected",
        description="Revoke selected API keys…",
        permission="revoke",
        form_class=ApiKeyRevokeForm,
        title="Revoke API keys",
        intro=REVOKE_INTRO,
        button="Revoke",
        form_id="revoke-api-key-form",
        prepare=lambda qs: qs.select_related("owner"),
        describe=lambda key: f"{key}, owner {key.owner}",
        run=lambda key, user, data: services.revoke_api_key(api_key=key, actor=user, reason=data["reason"]),
        done="Revoked {n} API key{s}.",
    )
