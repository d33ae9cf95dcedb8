"""Codes: a list that stays fast at a million rows, the code lookup (dispute) page, QR images,
streamed CSV export and voiding."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from loyalty.admin.base import BigListMixin, ChangeListExportMixin, PageAction, ReadOnlyAdminMixin
from loyalty.exceptions import DomainError
from loyalty.forms import form_errors_text

from .. import codegen, exports, qr, selectors, services
from ..forms import CodeLookupForm, ReasonForm
from ..models import Campaign, Code, CodeBatch, CodeEvent, CodeRedemption
from .common import apply_each, link, lookup_url, reason_step, short_time

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


@admin.register(Code)
class CodeAdmin(ChangeListExportMixin, BigListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only; codes are voided (action, lookup page) and rolled back through the services."""

    page_actions = (
        PageAction("promotions_code_void", "Void (code lookup)", ("promotions.void_code",), on_object=False),
        PageAction(
            "promotions_code_rollback",
            "Roll back a use (code lookup)",
            ("promotions.change_coderedemption",),
            on_object=False,
        ),
    )

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
        return link("campaign", obj.campaign_id, obj.campaign.name)

    @admin.display(description="Batch")
    def batch_link(self, obj):
        return link("codebatch", obj.batch_id, f"#{obj.batch_id}") if obj.batch_id else "-"

    @admin.display(description="Member")
    def member(self, obj):
        if obj.assigned_member_id is None:
            return "-"
        return link("member", obj.assigned_member_id, obj.assigned_member.external_id, app_label="loyalty")

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
            path("lookup/void/", view(self.void_view), name="promotions_code_void"),
            path("lookup/rollback/", view(self.rollback_view), name="promotions_code_rollback"),
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
    def has_void_permission(self, request, obj=None):
        return request.user.has_perm("promotions.void_code")

    @admin.action(description="Void selected codes…", permissions=["void"])
    def void(self, request, queryset):
        step = reason_step(
            self,
            request,
            queryset.select_related("campaign"),
            action="void",
            title="Void codes",
            intro="Voided codes never work again. Uses already made stay as they are.",
            button="Void these codes",
            describe=lambda c: f"{c.code} ({c.get_status_display().lower()}, {c.campaign.name})",
        )
        if not isinstance(step, tuple):
            return step
        codes, reason = step
        apply_each(
            self,
            request,
            codes,
            lambda c: services.void_code(code=c, actor=request.user, reason=reason),
            done="Voided {n} code{s}.",
        )

    def void_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_void_permission(request):
            raise PermissionDenied
        code = Code.objects.filter(pk=request.POST.get("code_id") or 0).first()
        if code is None:
            raise Http404("No such code.")
        form = ReasonForm(request.POST)
        if not form.is_valid():
            self.message_user(request, f"Code not voided. {form_errors_text(form)}", messages.ERROR)
        else:
            try:
                services.void_code(code=code, actor=request.user, reason=form.cleaned_data["reason"])
            except DomainError as exc:
                self.message_user(request, f"Code not voided. {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, f"Code {code.code} voided.", messages.SUCCESS)
        return HttpResponseRedirect(lookup_url(code.normalized))

    # --- rollback of one use --------------------------------------------------------------------------
    def rollback_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("promotions.change_coderedemption"):
            raise PermissionDenied
        use = CodeRedemption.objects.select_related("code").filter(pk=request.POST.get("redemption_id") or 0).first()
        if use is None:
            raise Http404("No such code use.")
        form = ReasonForm(request.POST)
        if not form.is_valid():
            self.message_user(request, f"Use not rolled back. {form_errors_text(form)}", messages.ERROR)
        else:
            try:
                services.rollback_code_redemption(
                    redemption=use, actor=request.user, reason=form.cleaned_data["reason"]
                )
            except DomainError as exc:
                self.message_user(request, f"Use not rolled back. {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, f"Rolled back the use in order {use.order_id or use.pk}.", messages.SUCCESS)
        return HttpResponseRedirect(lookup_url(use.code.normalized))

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
                user = request.user
                context.update(
                    {
                        "timeline": selectors.code_timeline(code),
                        "uses": list(
                            code.redemptions.select_related("member", "redeemed_by", "rolled_back_by").order_by(
                                "created_at", "id"
                            )
                        ),
                        "can_rollback": user.has_perm("promotions.change_coderedemption"),
                        "can_void": user.has_perm("promotions.void_code") and code.status != Code.Status.VOID,
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
