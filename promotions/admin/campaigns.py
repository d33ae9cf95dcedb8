"""Campaigns (with their batches and the "Generate codes" form) and code batches."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from loyalty.kernel import DomainError
from loyalty.kernel.admin import (
    NoDeleteMixin,
    ObjectAction,
    ObjectActionsMixin,
    PageAction,
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    ServiceManagedHistoryAdmin,
    ServiceSaveMixin,
    admin_url,
    bulk_action,
    changelist_url,
    form_errors_text,
    link,
)

from .. import exports, selectors, services
from ..forms import CampaignAdminForm, GenerateCodesForm, ReasonForm
from ..models import Campaign, Code, CodeBatch
from .common import progress_html

GENERATE_PERM = "promotions.generate_codes"


def codes_url(**filters) -> str:
    return changelist_url("promotions.code", **filters)


def _window(campaign: Campaign) -> str:
    start = f"{campaign.starts_at:%Y-%m-%d %H:%M}" if campaign.starts_at else "…"
    end = f"{campaign.ends_at:%Y-%m-%d %H:%M}" if campaign.ends_at else "open"
    return f"{start} → {end}"


class CodeBatchInline(ReadOnlyInline):
    model = CodeBatch
    select_related = ("created_by",)
    fk_name = "campaign"
    verbose_name_plural = "Code batches"
    fields = ("batch", "pattern", "progress", "status", "max_uses", "release_at", "valid_until", "created_by", "codes")
    readonly_fields = fields
    show_change_link = False
    ordering = ("-created_at",)

    @admin.display(description="Batch")
    def batch(self, obj):
        return link("promotions.codebatch", f"#{obj.pk}", pk=obj.pk)

    @admin.display(description="Generated")
    def progress(self, obj):
        return progress_html(obj.generated, obj.count)

    @admin.display(description="Codes")
    def codes(self, obj):
        if not obj.pk:
            return "-"
        return format_html(
            '<a href="{}">Codes</a> · <a href="{}">CSV</a>',
            codes_url(batch__id__exact=obj.pk),
            admin_url("promotions.codebatch", "export", obj.pk),
        )


def _move(campaign: Campaign, user, status: str, reason: str) -> Campaign:
    return services.change_campaign_status(campaign=campaign, status=status, actor=user, reason=reason)


def _status_action(verb: str, status: str):
    """Activate / Pause selected campaigns: no form, the reason says where it happened."""
    past = f"{verb.capitalize().rstrip('e')}ed"
    return bulk_action(
        name=verb,
        description=f"{verb.capitalize()} selected campaigns",
        permission="change",
        run=lambda c, user: _move(c, user, status, f"{past} in the admin"),
        done=past + " {n} campaign{s}.",
    )


class ChangeCampaignStatus(ObjectAction):
    """The Activate / Pause / End buttons of the campaign page (the target is posted as ``status``)."""

    name = "status"
    label = "Change status"
    roles_label = "Activate / pause / end (campaign page)"
    permissions = ("promotions.change_campaign",)
    refused = "Status not changed."

    def available(self, request, obj) -> bool:
        return self.has_permission(request, obj) and bool(Campaign.STATUS_TRANSITIONS[obj.status])

    def run(self, request, obj, data):
        campaign = _move(obj, request.user, request.POST.get("status", ""), "Changed on the campaign page")
        return f"The campaign is now {campaign.get_status_display().lower()}."


@admin.register(Campaign)
class CampaignAdmin(NoDeleteMixin, ObjectActionsMixin, ServiceSaveMixin, ServiceManagedHistoryAdmin):
    """Campaign managers' main screen. Saves go through ``create_campaign`` / ``update_campaign``;
    statuses move through the actions and the buttons on the page; batches through the
    "Generate codes" form (a custom view below)."""

    extra_page_actions = (
        PageAction(
            "promotions_campaign_generate_codes",
            "Generate codes (campaign page)",
            ("promotions.view_campaign", GENERATE_PERM),
        ),
    )
    object_actions = (ChangeCampaignStatus(),)

    form = CampaignAdminForm
    change_form_template = "admin/promotions/campaign/change_form.html"
    inlines = [CodeBatchInline]
    list_display = (
        "name",
        "kind",
        "value_display",
        "status",
        "window",
        "redemptions",
        "discount",
        "stacking",
    )
    list_filter = ("status", "kind", "stacking")
    search_fields = ("name",)
    list_select_related = ("metric",)
    autocomplete_fields = ("metric", "eligible_tiers", "eligible_segments")
    actions = ["activate", "pause", "end"]
    ordering = ("-created_at",)
    readonly_fields = (
        "status",
        "redemptions_count",
        "discount_total",
        "bonus_points_total",
        "created_by",
        "created_at",
        "updated_at",
    )

    def get_fieldsets(self, request, obj=None):
        main = ["name", "description", "kind", "value", "metric"]
        if obj is not None:
            main.insert(0, "status")
        sets = [
            (None, {"fields": main}),
            (
                "Window and budget",
                {"fields": ("starts_at", "ends_at", "max_redemptions", "max_discount_total", "per_member_limit")},
            ),
            ("Eligibility", {"fields": ("eligible_tiers", "eligible_segments", "min_order_amount", "channels")}),
            ("Stacking", {"fields": ("stacking", "stack_group", "max_codes_per_order")}),
            ("Codes", {"fields": ("code_pattern",)}),
        ]
        if obj is not None:
            sets.append(("Usage", {"fields": ("redemptions_count", "discount_total", "bonus_points_total")}))
            sets.append(("Audit", {"fields": ("created_by", "created_at", "updated_at"), "classes": ("collapse",)}))
            if self.has_change_permission(request, obj):
                sets.append(("Change", {"fields": ("change_reason",)}))
        return sets

    # --- list columns ------------------------------------------------------------------------------
    @admin.display(description="Value", ordering="value")
    def value_display(self, obj):
        if obj.kind == Campaign.Kind.PERCENT_DISCOUNT:
            return f"{obj.value.normalize():f} %"
        if obj.kind == Campaign.Kind.BONUS_POINTS:
            return f"{int(obj.value):,} {obj.metric.code if obj.metric else 'points'}"
        return f"{obj.value}"

    @admin.display(description="Window", ordering="starts_at")
    def window(self, obj):
        return _window(obj)

    @admin.display(description="Redemptions")
    def redemptions(self, obj):
        return (
            f"{obj.redemptions_count:,} / {obj.max_redemptions:,}"
            if obj.max_redemptions
            else f"{obj.redemptions_count:,}"
        )

    @admin.display(description="Discount given")
    def discount(self, obj):
        return f"{obj.discount_total} / {obj.max_discount_total}" if obj.max_discount_total else f"{obj.discount_total}"

    # --- permissions ---------------------------------------------------------------------------------
    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status == Campaign.Status.ENDED:
            return False  # an ended campaign is final
        return super().has_change_permission(request, obj)

    # --- saving through the services -------------------------------------------------------------------
    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = {f: data[f] for f in services.CAMPAIGN_FIELDS if f in data}
        try:
            if change:
                changed = {f: v for f, v in fields.items() if f in form.changed_data}
                campaign = services.update_campaign(
                    campaign=obj,
                    actor=request.user,
                    reason=(data.get("change_reason") or "").strip() or "Edited in the admin",
                    eligible_tiers=list(data["eligible_tiers"]) if "eligible_tiers" in form.changed_data else None,
                    eligible_segments=list(data["eligible_segments"])
                    if "eligible_segments" in form.changed_data
                    else None,
                    **changed,
                )
            else:
                campaign = services.create_campaign(
                    actor=request.user,
                    eligible_tiers=list(data.get("eligible_tiers") or []),
                    eligible_segments=list(data.get("eligible_segments") or []),
                    **fields,
                )
        except DomainError as exc:
            errors = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.errors.items())
            self.refuse_save(request, exc, f"{exc.detail} {errors}".strip())
            return
        self.adopt_saved(obj, campaign)

    def save_related(self, request, form, formsets, change):
        # Eligibility is saved by the service (not form.save_m2m); the batches inline is view-only,
        # so saving its formset writes nothing but lets the admin build its change message.
        if self.save_refused(request):
            return
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    # --- status actions ------------------------------------------------------------------------------
    activate = _status_action("activate", Campaign.Status.ACTIVE)
    pause = _status_action("pause", Campaign.Status.PAUSED)
    end = bulk_action(
        name="end",
        description="End selected campaigns (final)…",
        permission="change",
        form_class=ReasonForm,
        title="End campaigns",
        intro="Ending is final: the campaigns' codes stop working and the campaigns can no longer change.",
        button="End these campaigns",
        run=lambda c, user, data: _move(c, user, Campaign.Status.ENDED, data["reason"]),
        done="Ended {n} campaign{s}.",
    )

    # --- the change page ------------------------------------------------------------------------------
    def _url_name(self, suffix: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{suffix}"

    def get_urls(self):
        return [
            path(
                "<path:object_id>/generate-codes/",
                self.admin_site.admin_view(self.generate_codes_view),
                name=self._url_name("generate_codes"),
            ),
        ] + super().get_urls()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context.update(self.campaign_panels(request, obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def campaign_panels(self, request, campaign: Campaign, generate_form=None) -> dict:
        user = request.user
        can_change = super().has_change_permission(request, campaign)
        order = [Campaign.Status.ACTIVE, Campaign.Status.PAUSED, Campaign.Status.ENDED]
        allowed = Campaign.STATUS_TRANSITIONS[campaign.status] if can_change else set()
        targets = [s for s in order if s in allowed]
        return {
            "campaign_panels": True,
            "stats": selectors.campaign_stats(campaign),
            "status_targets": [(s, Campaign.Status(s).label) for s in targets],
            "status_url": reverse(f"admin:{self._url_name('status')}", args=[campaign.pk]),
            "can_generate": user.has_perm(GENERATE_PERM) and campaign.status != Campaign.Status.ENDED,
            "generate_form": generate_form or GenerateCodesForm(campaign=campaign),
            "generate_url": reverse(f"admin:{self._url_name('generate_codes')}", args=[campaign.pk]),
            "codes_url": codes_url(campaign__id__exact=campaign.pk),
            "can_view_codes": user.has_perm("promotions.view_code"),
        }

    def _campaign(self, request, object_id) -> Campaign:
        campaign = self.get_object(request, unquote(object_id))
        if campaign is None:
            raise Http404("No such campaign.")
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        return campaign

    def _back(self, campaign: Campaign) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse(f"admin:{self._url_name('change')}", args=[campaign.pk]))

    def generate_codes_view(self, request, object_id):
        """Hand-written, not an ObjectAction: a page of its own (GET shows the form with the batch
        settings, an invalid POST shows it again with the errors and the campaign's panels) with a
        double-submit guard in the cache, answering with the queued batch's progress."""
        campaign = self._campaign(request, object_id)
        if not request.user.has_perm(GENERATE_PERM):
            raise PermissionDenied
        form = GenerateCodesForm(request.POST if request.method == "POST" else None, campaign=campaign)
        if request.method == "POST":
            if form.is_valid():
                token = form.cleaned_data.get("token")
                if token and not cache.add(f"promotions:generate:{campaign.pk}:{token}", 1, timeout=24 * 3600):
                    self.message_user(request, "This form was already submitted; nothing changed.", messages.WARNING)
                    return self._back(campaign)
                try:
                    batch = services.create_code_batch(campaign=campaign, actor=request.user, **form.service_kwargs())
                except DomainError as exc:
                    if token:
                        cache.delete(f"promotions:generate:{campaign.pk}:{token}")
                    for field, errors in exc.errors.items():
                        form.add_error(field if field in form.fields else None, [str(e) for e in errors])
                    self.message_user(request, f"No codes generated. {exc.detail}", messages.ERROR)
                else:
                    self.message_user(
                        request,
                        f"Batch #{batch.pk} queued: {batch.count:,} codes ({batch.pattern}). "
                        "Progress shows in the batches below.",
                        messages.SUCCESS,
                    )
                    return self._back(campaign)
            else:
                self.message_user(request, f"No codes generated. {form_errors_text(form)}", messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Generate codes for {campaign}",
            "opts": self.opts,
            "original": campaign,
            "campaign": campaign,
            "generate_form": form,
            "generate_url": reverse(f"admin:{self._url_name('generate_codes')}", args=[campaign.pk]),
            "has_view_permission": True,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/promotions/campaign/generate_codes.html", context)


@admin.register(CodeBatch)
class CodeBatchAdmin(ReadOnlyAdminMixin, ServiceManagedHistoryAdmin):
    list_display = (
        "id",
        "campaign_link",
        "pattern",
        "progress",
        "status",
        "max_uses",
        "release_at",
        "valid_until",
        "segment",
        "created_by",
        "created_at",
        "links",
    )
    list_display_links = ("id",)
    list_filter = ("status",)
    search_fields = ("campaign__name", "pattern")
    list_select_related = ("campaign", "segment", "created_by")
    ordering = ("-created_at",)
    actions = ["export_csv"]
    fields = (
        "campaign_link",
        "status",
        "progress",
        "pattern",
        "charset",
        "max_uses",
        "release_at",
        "valid_until",
        "segment",
        "email_members",
        "error",
        "created_by",
        "created_at",
        "finished_at",
        "links",
    )
    readonly_fields = fields

    @admin.display(description="Campaign", ordering="campaign__name")
    def campaign_link(self, obj):
        return link("promotions.campaign", obj.campaign.name, pk=obj.campaign_id)

    @admin.display(description="Generated")
    def progress(self, obj):
        return progress_html(obj.generated, obj.count)

    @admin.display(description="Codes")
    def links(self, obj):
        return format_html(
            '<a href="{}">View codes</a> · <a href="{}">Export codes (CSV)</a>',
            codes_url(batch__id__exact=obj.pk),
            admin_url("promotions.codebatch", "export", obj.pk),
        )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/export/",
                self.admin_site.admin_view(self.export_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_export",
            ),
        ] + super().get_urls()

    def _require_export(self, request):
        if not (self.has_view_permission(request) and request.user.has_perm("promotions.view_code")):
            raise PermissionDenied

    def export_view(self, request, object_id):
        self._require_export(request)
        batch = self.get_object(request, unquote(object_id))
        if batch is None:
            raise Http404("No such batch.")
        return exports.stream_codes_csv(Code.objects.filter(batch=batch), filename=f"batch-{batch.pk}-codes.csv")

    @admin.action(description="Export codes of the selected batches (CSV)", permissions=["view"])
    def export_csv(self, request, queryset):
        self._require_export(request)
        ids = list(queryset.values_list("pk", flat=True)[:1000])
        name = f"batch-{ids[0]}-codes.csv" if len(ids) == 1 else "batches-codes.csv"
        return exports.stream_codes_csv(Code.objects.filter(batch_id__in=ids).order_by("-id"), filename=name)
