"""Admin for purchases, rule sets (with the earning preview), trackers and program settings.

Purchases are recorded by the API; rule sets move through ``services`` (create/update drafts,
publish, retire, new version). Nothing here writes a model directly, except the program settings
form (there is no service for it yet; it saves with the acting user in history).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.html import format_html

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
from ..forms import form_errors_text
from ..models import MemberTracker, ProgramSettings, Rule, RuleSet, Transaction, TransactionReturn
from .base import (
    BigListMixin,
    ExactSearchMixin,
    PageAction,
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    ServiceManagedHistoryAdmin,
    ServiceSaveMixin,
    admin_link,
)


def render_breakdown(breakdown: dict | None) -> str:
    """An earning breakdown as HTML (rule set, version, tier, rules fired)."""
    if not breakdown:
        return "-"
    return render_to_string("admin/loyalty/earning/_breakdown.html", {"b": breakdown})


# --- list filters typed into inputs ----------------------------------------------------------


class InputFilter(admin.ListFilter):
    """A filter with text/number/date inputs instead of a list of choices: exact values and ranges
    on indexed columns, with no ``SELECT DISTINCT`` over a million rows to build the choices."""

    template = "admin/loyalty/transaction/input_filter.html"
    # (GET parameter, label, input type)
    inputs: tuple[tuple[str, str, str], ...] = ()

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.errors: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        for name, _label, _type in self.inputs:
            if name in params:
                raw = params.pop(name)
                raw = (raw[-1] if isinstance(raw, list) else raw).strip()
                if not raw:
                    continue
                self.used_parameters[name] = raw
                try:
                    self.values[name] = self.parse(name, raw)
                except ValueError as exc:
                    self.errors[name] = str(exc)

    def parse(self, name: str, raw: str) -> Any:
        return raw

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return [name for name, _label, _type in self.inputs]

    def choices(self, changelist):
        own = set(self.expected_parameters())
        hidden = [
            (key, value)
            for key, values in changelist.filter_params.items()
            if key not in own and key != "p"
            for value in values
        ]
        yield {
            "hidden": hidden,
            "active": bool(self.used_parameters),
            "clear_url": changelist.get_query_string(remove=list(own)),
            "fields": [
                {
                    "name": name,
                    "label": label,
                    "type": kind,
                    "step": "0.01" if kind == "number" else "",
                    "value": self.used_parameters.get(name, ""),
                    "error": self.errors.get(name, ""),
                }
                for name, label, kind in self.inputs
            ],
        }

    def queryset(self, request, queryset):
        filters = {k: v for k, v in self.values.items() if k not in self.errors}
        return self.apply(queryset, filters) if filters else queryset

    def apply(self, queryset, values: dict[str, Any]):
        raise NotImplementedError


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

    def parse(self, name, raw):
        try:
            return _local_bound(raw, end=name == "occurred_before")
        except (ValueError, OverflowError) as exc:
            raise ValueError(str(exc) or "Not a date.") from None

    def apply(self, queryset, values):
        if "occurred_after" in values:
            queryset = queryset.filter(occurred_at__gte=values["occurred_after"])
        if "occurred_before" in values:
            queryset = queryset.filter(occurred_at__lt=values["occurred_before"])
        return queryset


class AmountRangeFilter(InputFilter):
    title = "amount"
    inputs = (("amount_min", "At least", "number"), ("amount_max", "At most", "number"))

    def parse(self, name, raw):
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise ValueError("Not a number.") from None
        if not value.is_finite():
            raise ValueError("Not a number.")
        return value

    def apply(self, queryset, values):
        if "amount_min" in values:
            queryset = queryset.filter(amount__gte=values["amount_min"])
        if "amount_max" in values:
            queryset = queryset.filter(amount__lte=values["amount_max"])
        return queryset


class StoreChannelFilter(InputFilter):
    title = "store and channel"
    inputs = (("store", "Store", "text"), ("channel", "Channel", "text"))

    def apply(self, queryset, values):
        return queryset.filter(**values)


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
    fields = ("created_at", "amount", "points_reversed", "debt_created", "reason", "created_by")
    readonly_fields = fields
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")


@admin.register(Transaction)
class TransactionAdmin(ExactSearchMixin, BigListMixin, ReadOnlyAdminMixin, ServiceManagedHistoryAdmin):
    """Purchases are recorded by the API (``services.record_transaction``); returns go through
    ``services.return_transaction`` from the "Return" button on the purchase page."""

    page_actions = (
        PageAction(
            "loyalty_transaction_return",
            "Return (purchase page)",
            ("loyalty.view_transaction", "loyalty.add_transactionreturn"),
        ),
    )

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
        return admin_link(obj.member) if obj.member_id else format_html('<span class="quiet">{}</span>', "none")

    @admin.display(description="Breakdown")
    def breakdown_html(self, obj):
        return render_breakdown(obj.breakdown)

    def _url_name(self, suffix: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{suffix}"

    def get_urls(self):
        return [
            path(
                "<path:object_id>/return/",
                self.admin_site.admin_view(self.return_view),
                name=self._url_name("return"),
            ),
        ] + super().get_urls()

    def can_return(self, request) -> bool:
        return request.user.has_perm("loyalty.add_transactionreturn")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["can_return"] = self.can_return(request) and obj.returned_amount < obj.amount
            context["return_url"] = reverse(f"admin:{self._url_name('return')}", args=[obj.pk])
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def return_view(self, request, object_id):
        txn = self.get_object(request, unquote(object_id))
        if txn is None:
            raise Http404("No such purchase.")
        if not (self.has_view_permission(request, txn) and self.can_return(request)):
            raise PermissionDenied
        back = reverse(f"admin:{self._url_name('change')}", args=[txn.pk])
        form = ReturnTransactionForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                ret = services.return_transaction(
                    transaction_=txn,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                )
            except DomainError as exc:
                self.message_user(request, f"Nothing returned. {exc.detail}", messages.ERROR)
            else:
                debt = f"; {ret.debt_created} points became debt" if ret.debt_created else ""
                self.message_user(
                    request,
                    f"Returned {ret.amount} of bill {txn.external_id}: {ret.points_reversed} points taken back{debt}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(back)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Return bill {txn.external_id}",
            "original": txn,
            "form": form,
            "left": txn.amount - txn.returned_amount,
            "back_url": back,
        }
        return TemplateResponse(request, "admin/loyalty/transaction/return.html", context)


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
        return admin_link(obj.transaction)


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
        return admin_link(obj.member)


# --- rule sets -------------------------------------------------------------------------------


class RuleInline(admin.TabularInline):
    """Rules of a draft are edited here (saved through the services); a published set's are fixed."""

    model = Rule
    form = RuleAdminForm
    extra = 0
    ordering = ("position", "id")
    fields = (
        "position",
        "name",
        "metric",
        "action",
        "points",
        "unit_amount",
        "percent_by_tier",
        "min_amount",
        "channels",
        "stores",
        "tiers",
    )

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


@admin.register(RuleSet)
class RuleSetAdmin(ServiceSaveMixin, ServiceManagedHistoryAdmin):
    """Drafts are edited (through ``services.create_rule_set`` / ``update_rule_set``); published and
    retired versions are read-only everywhere. Publish, retire and "new version" are buttons."""

    page_actions = (
        PageAction(
            "loyalty_ruleset_publish", "Publish (rule set page)", ("loyalty.view_ruleset", "loyalty.publish_ruleset")
        ),
        PageAction(
            "loyalty_ruleset_retire", "Retire (rule set page)", ("loyalty.view_ruleset", "loyalty.publish_ruleset")
        ),
        PageAction(
            "loyalty_ruleset_new_version",
            "New version (rule set page)",
            ("loyalty.view_ruleset", "loyalty.add_ruleset"),
        ),
    )

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

    def has_delete_permission(self, request, obj=None):
        return False  # versions are history; a draft is simply never published

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

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
            user = request.user
            can_publish = user.has_perm("loyalty.publish_ruleset")
            context.update(
                {
                    "ruleset_panel": True,
                    "can_publish": can_publish and obj.status == RuleSet.Status.DRAFT,
                    "can_retire": can_publish and obj.status == RuleSet.Status.PUBLISHED,
                    "can_new_version": user.has_perm("loyalty.add_ruleset"),
                    "publish_url": reverse(f"admin:{self._url_name('publish')}", args=[obj.pk]),
                    "retire_url": reverse(f"admin:{self._url_name('retire')}", args=[obj.pk]),
                    "new_version_url": reverse(f"admin:{self._url_name('new_version')}", args=[obj.pk]),
                    "retire_form": RetireRuleSetForm(),
                    "new_version_form": NewVersionForm(),
                    "versions": list(
                        RuleSet.objects.filter(name=obj.name).select_related("published_by").order_by("-version")
                    ),
                }
            )
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_urls(self):
        def view(fn, suffix, route=None):
            return path(
                route or f"<path:object_id>/{suffix.replace('_', '-')}/",
                self.admin_site.admin_view(fn),
                name=self._url_name(suffix),
            )

        return [
            view(self.preview_view, "preview", "preview/"),
            view(self.publish_view, "publish"),
            view(self.retire_view, "retire"),
            view(self.new_version_view, "new_version"),
        ] + super().get_urls()

    def _rule_set_for_action(self, request, object_id, perm: str) -> RuleSet:
        if request.method != "POST":
            raise _NotPost
        rule_set = self.get_object(request, unquote(object_id))
        if rule_set is None:
            raise Http404("No such rule set.")
        if not (self.has_view_permission(request, rule_set) and request.user.has_perm(perm)):
            raise PermissionDenied
        return rule_set

    def _back(self, rule_set: RuleSet) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse(f"admin:{self._url_name('change')}", args=[rule_set.pk]))

    def publish_view(self, request, object_id):
        try:
            rule_set = self._rule_set_for_action(request, object_id, "loyalty.publish_ruleset")
        except _NotPost:
            return HttpResponseNotAllowed(["POST"])
        try:
            services.publish_rule_set(rule_set=rule_set, actor=request.user)
        except DomainError as exc:
            self.message_user(request, f"Not published. {exc.detail}", messages.ERROR)
        else:
            self.message_user(request, f"{rule_set} is published.", messages.SUCCESS)
        return self._back(rule_set)

    def retire_view(self, request, object_id):
        try:
            rule_set = self._rule_set_for_action(request, object_id, "loyalty.publish_ruleset")
        except _NotPost:
            return HttpResponseNotAllowed(["POST"])
        form = RetireRuleSetForm(request.POST)
        if not form.is_valid():
            self.message_user(request, f"Not retired. {form_errors_text(form)}", messages.ERROR)
            return self._back(rule_set)
        try:
            services.retire_rule_set(rule_set=rule_set, actor=request.user, reason=form.cleaned_data["reason"])
        except DomainError as exc:
            self.message_user(request, f"Not retired. {exc.detail}", messages.ERROR)
        else:
            self.message_user(
                request, f"{rule_set} is retired from now on; its past stays on record.", messages.SUCCESS
            )
        return self._back(rule_set)

    def new_version_view(self, request, object_id):
        try:
            rule_set = self._rule_set_for_action(request, object_id, "loyalty.add_ruleset")
        except _NotPost:
            return HttpResponseNotAllowed(["POST"])
        form = NewVersionForm(request.POST)
        if not form.is_valid():
            self.message_user(request, f"No new version. {form_errors_text(form)}", messages.ERROR)
            return self._back(rule_set)
        try:
            draft = services.new_rule_set_version(
                rule_set=rule_set, actor=request.user, valid_from=form.cleaned_data["valid_from"]
            )
        except DomainError as exc:
            self.message_user(request, f"No new version. {exc.detail}", messages.ERROR)
            return self._back(rule_set)
        self.message_user(
            request, f"{draft} is a new draft copied from {rule_set}; edit it, then publish.", messages.SUCCESS
        )
        return self._back(draft)

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


class _NotPost(Exception):
    pass


# --- program settings ------------------------------------------------------------------------


@admin.register(ProgramSettings)
class ProgramSettingsAdmin(ServiceManagedHistoryAdmin):
    """One row; the list goes straight to it. Only ``loyalty.change_programsettings`` may edit."""

    fieldsets = [
        ("Program", {"fields": ("currency", "qualification_period_months")}),
        (
            "Retro claims",
            {
                "fields": (
                    "retro_enabled",
                    "retro_window_days",
                    "retro_max_claims_per_30_days",
                    "retro_enrolment_buffer_hours",
                    "retro_auto_approve_below_points",
                )
            },
        ),
        (
            "Rollback policy",
            {
                "fields": (
                    "rollback_window_days",
                    "rollback_approval_above_points",
                    "rollback_approval_reasons",
                    "rollback_max_per_member_30_days",
                    "rollback_partial_allowed",
                    "rollback_expired_lot_grace_days",
                    "rollback_statuses",
                    "rollback_fulfillment_statuses",
                )
            },
        ),
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
