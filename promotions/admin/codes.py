"""Codes: a list that stays fast at a million rows, the code lookup (dispute) page, QR images,
streamed CSV export and voiding."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from loyalty.kernel.admin import (
    BigListMixin,
    ChangeListExportMixin,
    ObjectAction,
    ObjectActionsMixin,
    ReadOnlyAdminMixin,
    bulk_action,
    link,
    perm_checker,
)

from .. import codegen, exports, qr, selectors, services
from ..forms import CodeLookupForm, ReasonForm
from ..models import Campaign, Code, CodeBatch, CodeEvent, CodeRedemption
from .common import lookup_url, short_time

RECENT_CAMPAIGNS = 25


class CampaignFilter(admin.SimpleListFilter):
    """The most recent campaigns (and the chosen one): never a scan of the codes table."""

    title = "campaign"
    parameter_name = "campaign__id__exact"

    def lookups(self, request, model_admin):
        campaigns = list(Campaign.objects.order_by("-created_at").values_list("pk", "name")[:RECENT_CAMPAIGNS])
        chosen = self.value()
        if chosen and chosen.isdigit() and all(str(pk) != chosen for pk, _ in campaigns):
            campaigns += list(Campaign.objects.filter(pk=int(chosen)).values_list("pk", "name"))
        return [(str(pk), name) for pk, name in campaigns]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(campaign_id=int(value))
        return queryset


class BatchFilter(admin.SimpleListFilter):
    """The batches of the chosen campaign (or just the chosen batch)."""

    title = "batch"
    parameter_name = "batch__id__exact"

    def lookups(self, request, model_admin):
        campaign = request.GET.get("campaign__id__exact", "")
        chosen = self.value()
        if campaign.isdigit():
            qs = CodeBatch.objects.filter(campaign_id=int(campaign)).order_by("-created_at")[:50]
        elif chosen and chosen.isdigit():
            qs = CodeBatch.objects.filter(pk=int(chosen))
        else:
            return []
        return [(str(b.pk), f"#{b.pk} {b.pattern} ({b.count:,})") for b in qs]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(batch_id=int(value))
        return queryset

    def has_output(self):
        return True


class _LookupAction(ObjectAction):
    """A button on the code lookup page: the row is named in the POST, and the answer is the
    lookup page of its code again."""

    on_object = False
    view_permission = False
    form_class = ReasonForm
    model = Code
    id_field = ""

    def get_object(self, model_admin, request, object_id):
        raw = request.POST.get(self.id_field) or ""
        found = self.model.objects.filter(pk=int(raw)).first() if raw.isdigit() and len(raw) < 19 else None
        if found is None:
            raise Http404(f"No such {self.model._meta.verbose_name}.")
        return found

    def back_url(self, model_admin, request, obj) -> str:
        return lookup_url(self.code_of(obj).normalized)

    def code_of(self, obj) -> Code:
        return obj


class VoidCode(_LookupAction):
    name = "void"
    route = "lookup/void/"
    label = "Void"
    roles_label = "Void (code lookup)"
    permissions = ("promotions.void_code",)
    refused = "Code not voided."
    id_field = "code_id"

    def available(self, request, obj) -> bool:
        return self.has_permission(request, obj) and obj.status != Code.Status.VOID

    def run(self, request, obj, data):
        services.void_code(code=obj, actor=request.user, reason=data["reason"])
        return f"Code {obj.code} voided."


class RollBackCodeUse(_LookupAction):
    name = "rollback"
    route = "lookup/rollback/"
    label = "Roll back"
    roles_label = "Roll back a use (code lookup)"
    permissions = ("promotions.change_coderedemption",)
    refused = "Use not rolled back."
    model = CodeRedemption
    id_field = "redemption_id"

    def code_of(self, obj) -> Code:
        return obj.code

    def run(self, request, obj, data):
        services.rollback_code_redemption(redemption=obj, actor=request.user, reason=data["reason"])
        return f"Rolled back the use in order {obj.order_id or obj.pk}."


@admin.register(Code)
class CodeAdmin(ObjectActionsMixin, ChangeListExportMixin, BigListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only; codes are voided (action, lookup page) and rolled back through the services."""

    object_actions = (VoidCode(), RollBackCodeUse())

    change_list_template = "admin/promotions/code/change_list.html"
    list_display = (
        "code",
        "status",
        "usage",
        "campaign_link",
        "batch_link",
        "member",
        "validity",
    )
    list_display_links = ("code",)
    list_filter = ("status", CampaignFilter, BatchFilter)
    list_select_related = ("campaign", "assigned_member")
    search_fields = ("normalized",)
    search_help_text = "The exact code (case and separators do not matter)."
    ordering = ("-id",)
    sortable_by = ()  # only the indexed default order (-id)
    actions = ["void", "export_selected"]
    fields = (
        "code",
        "normalized",
        "status",
        "usage",
        "campaign_link",
        "batch_link",
        "member",
        "valid_from",
        "valid_until",
        "created_at",
        "updated_at",
        "lookup",
        "qr_image",
    )
    readonly_fields = fields
    # Only indexed filters: a million rows must never be scanned.
    allowed_lookups = {"status__exact", "campaign__id__exact", "batch__id__exact", "assigned_member__id__exact"}

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in self.allowed_lookups

    def get_search_results(self, request, queryset, search_term):
        term = codegen.normalize((search_term or "").strip())
        if not term:
            return queryset, False
        return queryset.filter(normalized=term), False

    # --- columns ---------------------------------------------------------------------------------
    @admin.display(description="Valid")
    def validity(self, obj):
        if not (obj.valid_from or obj.valid_until):
            return "-"  # the campaign's window
        start = short_time(obj.valid_from)[:10] if obj.valid_from else "…"
        end = short_time(obj.valid_until)[:10] if obj.valid_until else "…"
        return format_html(
            '<span title="{} → {}">{} → {}</span>', short_time(obj.valid_from), short_time(obj.valid_until), start, end
        )

    @admin.display(description="Uses")
    def usage(self, obj):
        return f"{obj.uses}/{obj.max_uses}"

    @admin.display(description="Campaign")
    def campaign_link(self, obj):
        return link("promotions.campaign", obj.campaign.name, pk=obj.campaign_id)

    @admin.display(description="Batch")
    def batch_link(self, obj):
        return link("promotions.codebatch", f"#{obj.batch_id}", pk=obj.batch_id) if obj.batch_id else "-"

    @admin.display(description="Member")
    def member(self, obj):
        if obj.assigned_member_id is None:
            return "-"
        return link("loyalty.member", obj.assigned_member.external_id, pk=obj.assigned_member_id)

    @admin.display(description="Dispute timeline")
    def lookup(self, obj):
        return format_html('<a href="{}" id="code-lookup-link">Open the code lookup</a>', lookup_url(obj.normalized))

    @admin.display(description="QR")
    def qr_image(self, obj):
        return format_html(
            '<img src="{}" alt="QR code of {}" width="150" height="150">',
            reverse("admin:promotions_code_qr", args=[obj.pk, "svg"]),
            obj.code,
        )

    # --- URLs --------------------------------------------------------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("lookup/", view(self.lookup_view), name="promotions_code_lookup"),
            path("export/", view(self.export_view), name="promotions_code_export"),
            path("<int:object_id>/qr.<str:fmt>", view(self.qr_view), name="promotions_code_qr"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "export_url": reverse("admin:promotions_code_export"),
            "lookup_url": reverse("admin:promotions_code_lookup"),
            "can_export": self.has_view_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def _require_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied

    # --- export --------------------------------------------------------------------------------------
    def export_view(self, request):
        """The current filtered changelist (same query string) as a streamed CSV."""
        self._require_view(request)
        return exports.stream_codes_csv(self.get_export_queryset(request), filename="codes.csv")

    @admin.action(description="Export selected codes (CSV)", permissions=["view"])
    def export_selected(self, request, queryset):
        return exports.stream_codes_csv(queryset.order_by("-id"), filename="codes.csv")

    # --- QR -----------------------------------------------------------------------------------------
    def qr_view(self, request, object_id, fmt):
        self._require_view(request)
        code = Code.objects.filter(pk=object_id).only("code").first()
        if code is None or fmt not in ("svg", "png"):
            raise Http404("No such code image.")
        if fmt == "svg":
            response = HttpResponse(qr.qr_svg(code.code), content_type="image/svg+xml")
        else:
            response = HttpResponse(qr.qr_png(code.code), content_type="image/png")
        response["Cache-Control"] = "private, max-age=3600"
        return response

    # --- void ---------------------------------------------------------------------------------------
    has_void_permission = perm_checker("promotions.void_code")

    void = bulk_action(
        name="void",
        description="Void selected codes…",
        permission="void",
        form_class=ReasonForm,
        title="Void codes",
        intro="Voided codes never work again. Uses already made stay as they are.",
        button="Void these codes",
        prepare=lambda qs: qs.select_related("campaign"),
        describe=lambda c: f"{c.code} ({c.get_status_display().lower()}, {c.campaign.name})",
        run=lambda c, user, data: services.void_code(code=c, actor=user, reason=data["reason"]),
        done="Voided {n} code{s}.",
    )

    # --- the lookup page ---------------------------------------------------------------------------------
    def lookup_view(self, request):
        self._require_view(request)
        form = CodeLookupForm(request.GET if "code" in request.GET else None)
        code = None
        context = {}
        if form.is_bound and form.is_valid():
            normalized = form.cleaned_data["code"]
            code = (
                Code.objects.select_related("campaign", "batch__created_by", "assigned_member")
                .filter(normalized=normalized)
                .first()
            )
            if code is None:
                # Unknown codes are still recorded when someone tries them: show those attempts.
                context["attempts"] = list(
                    CodeEvent.objects.filter(code_text=normalized).select_related("member").order_by("-id")[:100]
                )
            else:
                context.update(
                    {
                        "timeline": selectors.code_timeline(code),
                        "uses": list(
                            code.redemptions.select_related("member", "redeemed_by", "rolled_back_by").order_by(
                                "created_at", "id"
                            )
                        ),
                        "can_rollback": RollBackCodeUse().has_permission(request, None),
                        "can_void": VoidCode().available(request, code),
                        "reason_form": ReasonForm(),
                        "qr_svg_url": reverse("admin:promotions_code_qr", args=[code.pk, "svg"]),
                        "qr_png_url": reverse("admin:promotions_code_qr", args=[code.pk, "png"]),
                        "code_url": reverse("admin:promotions_code_change", args=[code.pk]),
                        "void_url": reverse("admin:promotions_code_void"),
                        "rollback_url": reverse("admin:promotions_code_rollback"),
                    }
                )
            context["normalized"] = normalized
        context.update(
            {
                **self.admin_site.each_context(request),
                "title": f"Code {code.code}" if code else "Code lookup",
                "opts": self.opts,
                "form": form,
                "code": code,
                "has_view_permission": True,
            }
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/promotions/code/lookup.html", context)
