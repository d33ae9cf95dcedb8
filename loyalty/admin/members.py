"""Admin for metrics, tiers, members, tier history and segments."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from .. import selectors, services
from ..exceptions import DomainError
from ..forms import AdjustPointsForm, ChangeTierForm, MemberAdminForm, form_errors_text
from ..models import LedgerEntry, Member, Metric, Segment, Tier, TierMembership
from .base import (
    BigListMixin,
    ExactSearchMixin,
    HistoryAdmin,
    PageAction,
    ReadOnlyAdminMixin,
    ServiceManagedHistoryAdmin,
    ServiceSaveMixin,
    admin_link,
)
from .panels import member_panels

RECENT_ENTRIES = 20
PROFILE_FIELDS = ("email", "name", "phone", "status")


@admin.register(Metric)
class MetricAdmin(HistoryAdmin):
    list_display = ("code", "name", "expiry_days", "updated_at")
    search_fields = ("code", "name")
    readonly_fields = ("created_at", "updated_at")


@admin.register(Tier)
class TierAdmin(HistoryAdmin):
    list_display = ("rank", "code", "name", "spend_threshold", "purchase_threshold")
    list_display_links = ("rank", "code")
    search_fields = ("code", "name")
    ordering = ("rank",)
    readonly_fields = ("created_at", "updated_at")


@admin.register(Member)
class MemberAdmin(BigListMixin, ServiceSaveMixin, ServiceManagedHistoryAdmin):
    """Support's main screen. Profile edits and enrolment go through ``services``; points and tier
    move through the two forms on the change page (custom views below)."""

    page_actions = (
        PageAction(
            "loyalty_member_adjust_points",
            "Adjust points (member page)",
            ("loyalty.view_member", "loyalty.adjust_points"),
        ),
        PageAction(
            "loyalty_member_change_tier",
            "Change tier (member page)",
            ("loyalty.view_member", "loyalty.change_member_tier"),
        ),
    )

    form = MemberAdminForm
    change_form_template = "admin/loyalty/member/change_form.html"
    list_display = ("external_id", "name", "email", "phone", "status", "tier", "enrolled_at")
    list_display_links = ("external_id", "name")
    list_filter = ("status", "tier")
    # Used by the search box and autocompletes; get_search_results below decides how they match.
    search_fields = ("external_id", "email", "name", "phone")
    search_help_text = "Part of the name or email, the phone's digits, or the customer id in any case."
    list_select_related = ("tier",)
    ordering = ("-id",)

    # --- search: only index-friendly lookups (a million members) ---------------------------
    def get_search_results(self, request, queryset, search_term):
        # pg_trgm indexes on PostgreSQL (loyalty.selectors.member_search_q); no joins, no duplicates.
        return selectors.search_members(queryset, (search_term or "")[:200]), False

    # --- the form -----------------------------------------------------------------------------
    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ("external_id", "name", "email", "phone", "tier")})]
        profile = ["external_id", "name", "email", "phone", "status"]
        if self.has_change_permission(request, obj):
            profile.append("change_reason")
        return [
            ("Profile", {"fields": profile}),
            ("Membership", {"fields": ("tier", "enrolled_at", "created_at", "updated_at")}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # The customer id is the brand's key; the tier moves only through "Change tier".
        return ("external_id", "tier", "enrolled_at", "created_at", "updated_at")

    def has_delete_permission(self, request, obj=None):
        return False  # members are closed (status), never deleted: the ledger refers to them

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        reason = (data.get("change_reason") or "").strip()
        try:
            if change:
                fields = {f: data[f] for f in PROFILE_FIELDS if f in form.changed_data and f in data}
                member = obj
                if fields:
                    member = services.update_member(
                        member=obj, actor=request.user, reason=reason or "Changed in the admin", **fields
                    )
            else:
                member = services.enroll_member(
                    external_id=data["external_id"],
                    email=data.get("email", ""),
                    name=data.get("name", ""),
                    phone=data.get("phone", ""),
                    tier=data.get("tier"),
                    actor=request.user,
                    reason=reason or "Enrolled in the admin",
                )
        except DomainError as exc:
            self.refuse_save(request, exc)
            return
        self.adopt_saved(obj, member)

    # --- the change page's panels ------------------------------------------------------------
    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context.update(self.member_panels(request, obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def _url_name(self, suffix: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{suffix}"

    def member_panels(self, request, member: Member) -> dict:
        user = request.user
        tier_history = (
            TierMembership.objects.filter(member=member)
            .select_related("tier", "changed_by")
            .order_by("-valid_from", "-id")[:50]
        )
        return {
            "member_panels": True,
            "balances": selectors.member_balances(member),
            "recent_entries": list(selectors.member_ledger(member)[:RECENT_ENTRIES]),
            "recent_limit": RECENT_ENTRIES,
            "ledger_url": reverse("admin:loyalty_ledgerentry_changelist")
            + "?"
            + urlencode({"member__id__exact": member.pk}),
            "lots_url": reverse("admin:loyalty_pointlot_changelist")
            + "?"
            + urlencode({"member__id__exact": member.pk}),
            "can_view_ledger": user.has_perm("loyalty.view_ledgerentry"),
            "can_view_lots": user.has_perm("loyalty.view_pointlot"),
            "tier_history": list(tier_history),
            "can_adjust": user.has_perm("loyalty.adjust_points"),
            "can_change_tier": user.has_perm("loyalty.change_member_tier"),
            "adjust_form": AdjustPointsForm(),
            "tier_form": ChangeTierForm(member=member),
            "adjust_url": reverse(f"admin:{self._url_name('adjust_points')}", args=[member.pk]),
            "change_tier_url": reverse(f"admin:{self._url_name('change_tier')}", args=[member.pk]),
            "extra_panels": [
                {"key": panel.key, "title": panel.title, "template": panel.template, "context": ctx}
                for panel in member_panels()
                if (ctx := panel.context(request, member)) is not None
            ],
        }

    # --- custom views --------------------------------------------------------------------------
    def get_urls(self):
        custom = [
            path(
                "<path:object_id>/adjust-points/",
                self.admin_site.admin_view(self.adjust_points_view),
                name=self._url_name("adjust_points"),
            ),
            path(
                "<path:object_id>/change-tier/",
                self.admin_site.admin_view(self.change_tier_view),
                name=self._url_name("change_tier"),
            ),
        ]
        for panel in member_panels():
            custom += panel.urls(self)
        return custom + super().get_urls()

    def _member_for_action(self, request, object_id: str, perm: str) -> Member:
        member = self.get_object(request, unquote(object_id))
        if member is None:
            raise Http404("No such member.")
        if not (self.has_view_or_change_permission(request, member) and request.user.has_perm(perm)):
            raise PermissionDenied
        return member

    def _back_to_member(self, member: Member) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse(f"admin:{self._url_name('change')}", args=[member.pk]))

    def adjust_points_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        member = self._member_for_action(request, object_id, "loyalty.adjust_points")
        form = AdjustPointsForm(request.POST)
        if not form.is_valid():
            self.message_user(request, f"Points not adjusted. {form_errors_text(form)}", messages.ERROR)
            return self._back_to_member(member)
        data = form.cleaned_data
        key = f"admin-adjust:{member.pk}:{data['token']}" if data["token"] else None
        if key and LedgerEntry.objects.filter(idempotency_key=key).exists():
            self.message_user(request, "This form was already submitted; nothing changed.", messages.WARNING)
            return self._back_to_member(member)
        try:
            entry = services.adjust_points(
                member=member,
                metric=data["metric"],
                amount=data["amount"],
                actor=request.user,
                reason=data["reason"],
                idempotency_key=key,
            )
        except DomainError as exc:
            self.message_user(request, f"Points not adjusted. {exc.detail}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"Adjusted {entry.amount:+,d} {data['metric'].code} (ledger entry #{entry.pk}).",
                messages.SUCCESS,
            )
        return self._back_to_member(member)

    def change_tier_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        member = self._member_for_action(request, object_id, "loyalty.change_member_tier")
        form = ChangeTierForm(request.POST, member=member)
        if not form.is_valid():
            self.message_user(request, f"Tier not changed. {form_errors_text(form)}", messages.ERROR)
            return self._back_to_member(member)
        tier = form.cleaned_data["tier"]
        try:
            services.change_tier(member=member, tier=tier, actor=request.user, reason=form.cleaned_data["reason"])
        except DomainError as exc:
            self.message_user(request, f"Tier not changed. {exc.detail}", messages.ERROR)
        else:
            self.message_user(request, f"The member is now {tier}.", messages.SUCCESS)
        return self._back_to_member(member)


@admin.register(TierMembership)
class TierMembershipAdmin(ExactSearchMixin, BigListMixin, ReadOnlyAdminMixin, ServiceManagedHistoryAdmin):
    """Tier history is written by ``services.change_tier`` / ``record_tier_interval`` only."""

    list_display = ("id", "member_link", "tier", "valid_from", "valid_to", "cause", "changed_by")
    list_filter = ("tier",)
    list_select_related = ("member", "tier", "changed_by")
    exact_search_fields = ("member__external_id",)
    search_help_text = "Exact customer id."
    ordering = ("-id",)

    @admin.display(description="Member", ordering="member")
    def member_link(self, obj):
        return admin_link(obj.member)


@admin.register(Segment)
class SegmentAdmin(HistoryAdmin):
    list_display = ("code", "name", "updated_at")
    search_fields = ("code", "name")
    autocomplete_fields = ("members",)
    readonly_fields = ("created_at", "updated_at")
