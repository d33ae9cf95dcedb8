"""Admin for purchases, rule sets (with the earning preview), trackers and program settings.

Purchases are recorded by the API; rule sets move through ``services`` (create/update drafts,
publish, retire, new version). Nothing here writes a model directly, except the program settings
form (there is no service for it yet; it saves with the acting user in history).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.html import format_html

from loyalty.kernel.admin import (
    BigListMixin,
    Done,
    DurableSaveMixin,
    ExactSearchMixin,
    InputFilter,
    NoDeleteMixin,
    ObjectAction,
    ObjectActionsMixin,
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    ServiceManagedHistoryAdmin,
    ServiceSaveMixin,
    link,
)

from .. import services
from ..earning_forms import (
    NewVersionForm,
    PreviewEarningForm,
    RetireRuleSetForm,
    ReturnTransactionForm,
    RuleAdminForm,
    RuleSetAdminForm,
)
from ..exceptions import DomainError
from ..models import MemberTracker, ProgramSettings, Rule, RuleSet, Transaction, TransactionReturn


def render_breakdown(breakdown: dict | None) -> str:
    """An earning breakdown as HTML (rule set, version, tier, rules fired)."""
    if not breakdown:
        return "-"
    return render_to_string("admin/loyalty/earning/_breakdown.html", {"b": breakdown})


# --- list filters typed into inputs ----------------------------------------------------------


def _local_bound(raw: str, *, end: bool) -> dt.datetime:
    """``YYYY-MM-DD`` (a whole local day; an end date includes its day) or ``YYYY-MM-DDTHH:MM``."""
    value = parse_datetime(raw.replace(" ", "T")) if ("T" in raw or " " in raw) else None
    if value is None:
        day = parse_date(raw)
        if day is None:
            raise ValueError("Use YYYY-MM-DD.")
        value = dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time())
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


class OccurredRangeFilter(InputFilter):
    title = "purchase date"
    inputs = (("occurred_after", "From", "date"), ("occurred_before", "To (inclusive)", "date"))
    lookups_by_input = {"occurred_after": "occurred_at__gte", "occurred_before": "occurred_at__lt"}

    def parse(self, name, raw):
        try:
            return _local_bound(raw, end=name == "occurred_before")
        except (ValueError, OverflowError) as exc:
            raise ValueError(str(exc) or "Not a date.") from None


class AmountRangeFilter(InputFilter):
    title = "amount"
    inputs = (("amount_min", "At least", "number"), ("amount_max", "At most", "number"))
    lookups_by_input = {"amount_min": "amount__gte", "amount_max": "amount__lte"}

    def parse(self, name, raw):
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise ValueError("Not a number.") from None
        if not value.is_finite():
            raise ValueError("Not a number.")
        return value


class StoreChannelFilter(InputFilter):
    title = "store and channel"
    inputs = (("store", "Store", "text"), ("channel", "Channel", "text"))
    lookups_by_input = {"store": "store", "channel": "channel"}


class LoyaltyFilter(admin.SimpleListFilter):
    title = "loyalty"
    parameter_name = "loyalty"

    def lookups(self, request, model_admin):
        return [("no", "Non-loyalty (no member)"), ("yes", "Loyalty (with member)")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(member__isnull=True)
        if self.value() == "yes":
            return queryset.filter(member__isnull=False)
        return queryset


# --- purchases -------------------------------------------------------------------------------


class TransactionReturnInline(ReadOnlyInline):
    model = TransactionReturn
    select_related = ("created_by",)
    fields = ("created_at", "amount", "points_reversed", "debt_created", "reason", "created_by")
    readonly_fields = fields
    show_change_link = False


class ReturnPurchase(ObjectAction):
    """ "Return" on the purchase page: a GET shows the form (amount, reason) on the confirm page."""

    name = "return"
    label = "Return"
    roles_label = "Return (purchase page)"
    permissions = ("loyalty.add_transactionreturn",)
    form_class = ReturnTransactionForm
    refused = "Nothing returned."
    confirm = True
    form_id = "return-form"

    def available(self, request, txn) -> bool:
        return self.has_permission(request, txn) and txn.returned_amount < txn.amount

    def confirm_context(self, request, txn):
        left = txn.amount - txn.returned_amount
        member = f" by {txn.member}" if txn.member_id else ""
        return {
            "title": f"Return bill {txn.external_id}",
            "intro": (
                f"Bill {txn.external_id} of {timezone.localtime(txn.occurred_at):%Y-%m-%d %H:%M}: {txn.amount} "
                f"{txn.currency}, {txn.points_earned} points earned{member}. Already returned: "
                f"{txn.returned_amount}; at most {left} can still be returned. The points this purchase earned "
                "are taken back in proportion, by the rules of the original purchase; pending points are "
                "cancelled first, points already spent become debt that the next purchases repay."
            ),
            "objects": [],
        }

    def run(self, request, txn, data):
        ret = services.return_transaction(
            transaction_=txn, amount=data["amount"], reason=data["reason"], actor=request.user
        )
        debt = f"; {ret.debt_created} points became debt" if ret.debt_created else ""
        return f"Returned {ret.amount} of bill {txn.external_id}: {ret.points_reversed} points taken back{debt}."


@admin.register(Transaction)
class TransactionAdmin(
    ObjectActionsMixin, ExactSearchMixin, BigListMixin, ReadOnlyAdminMixin, ServiceManagedHistoryAdmin
):
    """Purchases are recorded by the API (``services.record_transaction``); returns go through
    ``services.return_transaction`` from the "Return" button on the purchase page."""

    object_actions = (ReturnPurchase(),)

    change_form_template = "admin/loyalty/transaction/change_form.html"
    change_list_template = "admin/loyalty/transaction/change_list.html"
    list_display = (
        "external_id",
        "occurred_at",
        "amount",
        "currency",
        "member_link",
        "store",
        "channel",
        "points_earned",
        "returned_amount",
    )
    list_filter = (LoyaltyFilter, OccurredRangeFilter, AmountRangeFilter, StoreChannelFilter)
    list_select_related = ("member",)
    exact_search_fields = ("external_id", "member__external_id")
    id_search_fields = ()
    search_fields = ("external_id",)  # shows the search box; matching is exact (ExactSearchMixin)
    search_help_text = "Exact bill number or customer id."
    ordering = ("-occurred_at", "-id")
    fieldsets = [
        ("Purchase", {"fields": ("external_id", "occurred_at", "amount", "currency", "channel", "store")}),
        ("Earning", {"fields": ("member_link", "points_earned", "processed_at", "breakdown_html", "returned_amount")}),
        ("Record", {"fields": ("created_by", "created_at", "updated_at")}),
    ]
    readonly_fields = ("member_link", "breakdown_html")
    inlines = [TransactionReturnInline]

    @admin.display(description="Member", ordering="member")
    def member_link(self, obj):
        return link(obj.member) if obj.member_id else format_html('<span class="quiet">{}</span>', "none")

    @admin.display(description="Breakdown")
    def breakdown_html(self, obj):
        return render_breakdown(obj.breakdown)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            action = ReturnPurchase()
            context["can_return"] = action.available(request, obj)
            context["return_url"] = action.url(self, obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


@admin.register(TransactionReturn)
class TransactionReturnAdmin(ExactSearchMixin, BigListMixin, ReadOnlyAdminMixin, ServiceManagedHistoryAdmin):
    list_display = ("id", "created_at", "bill", "amount", "points_reversed", "debt_created", "reason", "created_by")
    list_select_related = ("transaction", "created_by")
    exact_search_fields = ("transaction__external_id",)
    search_fields = ("transaction__external_id",)
    search_help_text = "Exact bill number."
    ordering = ("-id",)

    @admin.display(description="Bill", ordering="transaction")
    def bill(self, obj):
        return link(obj.transaction)


@admin.register(MemberTracker)
class MemberTrackerAdmin(ExactSearchMixin, BigListMixin, ReadOnlyAdminMixin, ServiceManagedHistoryAdmin):
    list_display = ("member_link", "period_start", "period_end", "spend", "purchases", "updated_at")
    list_select_related = ("member",)
    exact_search_fields = ("member__external_id",)
    id_search_fields = ()
    search_fields = ("member__external_id",)
    search_help_text = "Exact customer id."
    ordering = ("-period_start", "-id")

    @admin.display(description="Member", ordering="member")
    def member_link(self, obj):
        return link(obj.member)


# --- rule sets -------------------------------------------------------------------------------


class RuleInline(admin.TabularInline):
    """Rules of a draft are edited here (saved through the services); a published set's are fixed."""

    model = Rule
    form = RuleAdminForm
    extra = 0
    ordering = ("position", "id")
    fields = tuple(RuleAdminForm.Meta.fields)  # the form's fields, in its order

    def _draft(self, obj) -> bool:
        return obj is None or obj.status == RuleSet.Status.DRAFT

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name == "metric":  # no add/edit/delete icons in a narrow cell
            for flag in ("can_add_related", "can_change_related", "can_delete_related", "can_view_related"):
                setattr(field.widget, flag, False)
        return field

    def get_extra(self, request, obj=None, **kwargs):
        return 1 if obj is None else 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("metric")

    def has_add_permission(self, request, obj=None):
        return self._draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._draft(obj) and super().has_delete_permission(request, obj)


class _RuleSetAction(ObjectAction):
    statuses: tuple[str, ...] = ()  # where the button is shown (empty: every status)

    def available(self, request, rule_set) -> bool:
        return self.has_permission(request, rule_set) and (not self.statuses or rule_set.status in self.statuses)


class PublishRuleSet(_RuleSetAction):
    name = "publish"
    label = "Publish"
    roles_label = "Publish (rule set page)"
    permissions = ("loyalty.publish_ruleset",)
    statuses = (RuleSet.Status.DRAFT,)
    refused = "Not published."

    def run(self, request, rule_set, data):
        services.publish_rule_set(rule_set=rule_set, actor=request.user)
        return f"{rule_set} is published."


class RetireRuleSet(_RuleSetAction):
    name = "retire"
    label = "Retire from now on"
    roles_label = "Retire (rule set page)"
    permissions = ("loyalty.publish_ruleset",)
    statuses = (RuleSet.Status.PUBLISHED,)
    form_class = RetireRuleSetForm
    refused = "Not retired."

    def run(self, request, rule_set, data):
        services.retire_rule_set(rule_set=rule_set, actor=request.user, reason=data["reason"])
        return f"{rule_set} is retired from now on; its past stays on record."


class NewRuleSetVersion(_RuleSetAction):
    name = "new_version"
    label = "New version"
    roles_label = "New version (rule set page)"
    permissions = ("loyalty.add_ruleset",)
    form_class = NewVersionForm
    refused = "No new version."

    def run(self, request, rule_set, data):
        draft = services.new_rule_set_version(rule_set=rule_set, actor=request.user, valid_from=data["valid_from"])
        return Done(f"{draft} is a new draft copied from {rule_set}; edit it, then publish.", redirect_to=draft)


@admin.register(RuleSet)
class RuleSetAdmin(NoDeleteMixin, ObjectActionsMixin, ServiceSaveMixin, ServiceManagedHistoryAdmin):
    """Drafts are edited (through ``services.create_rule_set`` / ``update_rule_set``); published and
    retired versions are read-only everywhere. Publish, retire and "new version" are buttons."""

    object_actions = (PublishRuleSet(), RetireRuleSet(), NewRuleSetVersion())

    form = RuleSetAdminForm
    change_form_template = "admin/loyalty/ruleset/change_form.html"
    change_list_template = "admin/loyalty/ruleset/change_list.html"
    list_display = ("name", "version", "status", "valid_from", "valid_to", "published_at", "rule_count")
    list_display_links = ("name", "version")
    list_filter = ("status",)
    search_fields = ("name",)
    inlines = [RuleInline]
    ordering = ("-valid_from", "-version")

    @admin.display(description="Rules")
    def rule_count(self, obj):
        return obj.rule_total

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(rule_total=Count("rules"))

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ("name", "description", "valid_from", "valid_to")})]
        return [
            (None, {"fields": ("name", "version", "status", "description")}),
            ("In force", {"fields": ("valid_from", "valid_to")}),
            ("Record", {"fields": ("previous", "created_by", "created_at", "published_by", "published_at")}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        locked = ("version", "status", "previous", "created_by", "created_at", "published_by", "published_at")
        if obj.status != RuleSet.Status.DRAFT:
            return (*locked, "name", "description", "valid_from", "valid_to")
        return locked

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status != RuleSet.Status.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    # --- saving a draft through the services ----------------------------------------------------
    def save_model(self, request, obj, form, change):
        pass  # saved with its rules in save_related, in one service call

    def save_related(self, request, form, formsets, change):
        for formset in formsets:  # the admin's change message reads these
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        rules = [
            f.rule_data()
            for formset in formsets
            for f in formset.forms
            if f.has_changed() or f.instance.pk
            if not (formset.can_delete and formset._should_delete_form(f)) and f.cleaned_data
        ]
        rules.sort(key=lambda r: r["position"])
        data = form.cleaned_data
        fields = {k: data.get(k) for k in ("name", "description", "valid_from", "valid_to")}
        try:
            if change:
                rule_set = services.update_rule_set(rule_set=form.instance, actor=request.user, rules=rules, **fields)
            else:
                rule_set = services.create_rule_set(actor=request.user, rules=rules, **fields)
        except DomainError as exc:
            errors = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.errors.items())
            self.refuse_save(request, exc, f"Not saved. {exc.detail} {errors}".strip())
            return
        self.adopt_saved(form.instance, rule_set)

    # --- the change page: lifecycle buttons and versions ----------------------------------------
    def _url_name(self, suffix: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{suffix}"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context.update(
                {
                    "ruleset_panel": True,
                    "versions": list(
                        RuleSet.objects.filter(name=obj.name).select_related("published_by").order_by("-version")
                    ),
                }
            )
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_urls(self):
        preview = path("preview/", self.admin_site.admin_view(self.preview_view), name=self._url_name("preview"))
        return [preview, *super().get_urls()]

    def preview_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = PreviewEarningForm(request.GET or None)
        breakdown = None
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            try:
                breakdown = services.preview_earning(
                    amount=data["amount"],
                    occurred_at=data["occurred_at"],
                    member=data["member"],
                    tier=data["tier"],
                    channel=data["channel"].strip(),
                    store=data["store"].strip(),
                )
            except DomainError as exc:
                self.message_user(request, exc.detail, messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Preview earning",
            "form": form,
            "breakdown": breakdown,
            "breakdown_html": render_breakdown(breakdown) if breakdown else "",
            "member": form.cleaned_data.get("member") if form.is_bound and form.is_valid() else None,
            "occurred_at": form.cleaned_data.get("occurred_at") if form.is_bound and form.is_valid() else None,
        }
        return TemplateResponse(request, "admin/loyalty/ruleset/preview.html", context)


# --- program settings ------------------------------------------------------------------------


@admin.register(ProgramSettings)
class ProgramSettingsAdmin(DurableSaveMixin, ServiceManagedHistoryAdmin):
    """One row; the list goes straight to it. Only ``loyalty.change_programsettings`` may edit.
    The save calls a (durable) service: ``DurableSaveMixin`` keeps the form out of a transaction."""

    fieldsets = [
        ("Program", {"fields": ("currency", "qualification_period_months")}),
        ("Retro claims", {"fields": ProgramSettings.RETRO_FIELDS}),
        ("Rollback policy", {"fields": ProgramSettings.ROLLBACK_FIELDS}),
        ("Record", {"fields": ("updated_at",)}),
    ]
    readonly_fields = ("updated_at",)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        obj = ProgramSettings.load()
        return HttpResponseRedirect(
            reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk])
        )

    def save_model(self, request, obj, form, change):
        changed = ", ".join(form.changed_data) or "nothing"
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
        try:
            services.update_program_settings(actor=request.user, reason=f"Changed in the admin: {changed}", **fields)
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
        obj.refresh_from_db()


__all__ = [
    "MemberTrackerAdmin",
    "ProgramSettingsAdmin",
    "RuleSetAdmin",
    "TransactionAdmin",
    "TransactionReturnAdmin",
    "render_breakdown",
]
