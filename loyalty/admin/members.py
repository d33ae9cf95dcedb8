"""Admin for metrics, tiers, members, tier history and segments."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from loyalty.kernel.admin import (
    BigListMixin,
    Done,
    ExactSearchMixin,
    HistoryAdmin,
    ObjectAction,
    ObjectActionsMixin,
    ReadOnlyAdminMixin,
    ServiceManagedHistoryAdmin,
    ServiceSaveMixin,
    changelist_url,
    link,
)

from .. import selectors, services
from ..exceptions import DomainError
from ..forms import AdjustPointsForm, ChangeTierForm, MemberAdminForm
from ..models import LedgerEntry, Member, Metric, Segment, Tier, TierMembership
from .panels import member_panels

RECENT_ENTRIES = 20
PROFILE_FIELDS = ("email", "name", "phone", "status", "marketing_opt_in")


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


class AdjustPoints(ObjectAction):
    name = "adjust_points"
    label = "Adjust"
    roles_label = "Adjust points (member page)"
    permissions = ("loyalty.adjust_points",)
    form_class = AdjustPointsForm
    refused = "Points not adjusted."

    def run(self, request, member, data):
        key = f"admin-adjust:{member.pk}:{data['token']}" if data["token"] else None
        if key and LedgerEntry.objects.filter(idempotency_key=key).exists():
            return Done("This form was already submitted; nothing changed.", messages.WARNING)
        entry = services.adjust_points(
            member=member,
            metric=data["metric"],
            amount=data["amount"],
            actor=request.user,
            reason=data["reason"],
            idempotency_key=key,
        )
        return format_html(
            "Adjusted {} {} (ledger entry {}).", f"{entry.amount:+,d}", data["metric"].code, link(entry, f"#{entry.pk}")
        )


class ChangeTier(ObjectAction):
    name = "change_tier"
    label = "Change tier"
    roles_label = "Change tier (member page)"
    permissions = ("loyalty.change_member_tier",)
    form_class = ChangeTierForm
    refused = "Tier not changed."

    def form_kwargs(self, request, member):
        return {"member": member}

    def run(self, request, member, data):
        services.change_tier(member=member, tier=data["tier"], actor=request.user, reason=data["reason"])
        return f"The member is now {data['tier']}."


SEARCH_COUNT_CAP = 1000


@admin.register(Member)
class MemberAdmin(ObjectActionsMixin, BigListMixin, ServiceSaveMixin, ServiceManagedHistoryAdmin):
    """Support's main screen. Profile edits and enrolment go through ``services``; points and tier
        move through the two forms on the change page (object actions below); the panels other apps
    register add theirs."""

    object_actions = (AdjustPoints(), ChangeTier())

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
    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        # A search result is read, not paged through: count at most SEARCH_COUNT_CAP matches, so
        # a broad term ("smith" at a million members) never counts the whole match.
        paginator = super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)
        if (request.GET.get("q") or "").strip():
            paginator.cap = SEARCH_COUNT_CAP
        return paginator

    def get_search_results(self, request, queryset, search_term):
        # pg_trgm indexes on PostgreSQL (loyalty.selectors.member_search_q); no joins, no duplicates.
        # The match runs once: the newest SEARCH_COUNT_CAP matching ids, which the count and the
        # page then read by primary key (the trigram scan is the costly part; it ran for each).
        found = selectors.search_members(queryset, (search_term or "")[:200])
        if found is queryset:
            return queryset, False
        ids = list(found.order_by("-pk").values_list("pk", flat=True)[:SEARCH_COUNT_CAP])
        return queryset.filter(pk__in=ids), False

    # --- the form -----------------------------------------------------------------------------
    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ("external_id", "name", "email", "phone", "marketing_opt_in", "tier")})]
        profile = ["external_id", "name", "email", "phone", "status", "marketing_opt_in"]
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
                    marketing_opt_in=data.get("marketing_opt_in", True),
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
            "ledger_url": changelist_url("loyalty.ledgerentry", member__id__exact=member.pk),
            "lots_url": changelist_url("loyalty.pointlot", member__id__exact=member.pk),
            "can_view_ledger": user.has_perm("loyalty.view_ledgerentry"),
            "can_view_lots": user.has_perm("loyalty.view_pointlot"),
            "tier_history": list(tier_history),
            "can_adjust": AdjustPoints().available(request, member),
            "can_change_tier": ChangeTier().available(request, member),
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

    # --- the actions of the page: its own and the panels' ----------------------------------------
    def get_object_actions(self):
        return [*self.object_actions, *(action for panel in member_panels() for action in panel.object_actions)]

    def get_urls(self):
        custom = []
        for panel in member_panels():
            custom += panel.urls(self)
        return custom + super().get_urls()


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
        return link(obj.member)


@admin.register(Segment)
class SegmentAdmin(HistoryAdmin):
    list_display = ("code", "name", "updated_at")
    search_fields = ("code", "name")
    autocomplete_fields = ("members",)
    readonly_fields = ("created_at", "updated_at")
