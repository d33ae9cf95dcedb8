"""Admin for retro claims: claim pages, the approvers' queue, and "File a retro claim" on the member page.

Every state change goes through ``retro.services`` (submit, approve, reject); a refused row is
reported with the service's reason, the others go ahead.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from loyalty.admin.base import (
    BigListMixin,
    ExactSearchMixin,
    PageAction,
    ReadOnlyAdminMixin,
    ServiceManagedHistoryAdmin,
    admin_link,
)
from loyalty.admin.earning import render_breakdown
from loyalty.admin.panels import MemberPanel, register_member_panel
from loyalty.exceptions import Conflict, DomainError
from loyalty.forms import form_errors_text
from loyalty.models import ProgramSettings
from loyalty.templatetags.insight import points_by_metric

from . import services
from .forms import FileClaimForm, RejectClaimsForm, RetroSearchForm
from .models import RetroClaim

APPROVE_PERM = "retro.approve_retroclaim"
FILE_PERM = "retro.add_retroclaim"
PANEL_LIMIT = 20


def _summary(breakdown: dict | None) -> str:
    """``Spring v1 · SILVER · Tier share 45`` from an earning breakdown."""
    if not breakdown:
        return "-"
    rule_set = breakdown.get("rule_set")
    parts = [f"{rule_set['name']} v{rule_set['version']}" if rule_set else "no rule set"]
    parts.append(f"tier {breakdown.get('tier') or 'none'}")
    parts += [f"{r['rule']} {r['points']}" for r in breakdown.get("rules", [])]
    return " · ".join(parts)


def _status_badge(claim: RetroClaim):
    return format_html('<span class="status-badge status-{}">{}</span>', claim.status, claim.get_status_display())


@admin.register(RetroClaim)
class RetroClaimAdmin(ExactSearchMixin, BigListMixin, ReadOnlyAdminMixin, ServiceManagedHistoryAdmin):
    page_actions = (
        PageAction("retro_retroclaim_approve", "Approve (claim page)", ("retro.view_retroclaim", APPROVE_PERM)),
        PageAction("retro_retroclaim_reject", "Reject (claim page)", ("retro.view_retroclaim", APPROVE_PERM)),
    )
    change_form_template = "admin/retro/retroclaim/change_form.html"
    change_list_template = "admin/retro/retroclaim/change_list.html"
    list_display = (
        "id",
        "created_at",
        "status_badge",
        "member_link",
        "bill_link",
        "purchase_date",
        "purchase_amount",
        "preview_points",
        "points_awarded",
        "requested_by",
    )  # channel and approver: in the filters and on the claim (the list fits 1366 px)
    queue_list_display = (
        "id",
        "age",
        "member_link",
        "bill_link",
        "purchase_date",
        "purchase_amount",
        "points_preview",
        "preview_summary",
        "filed_by",
    )
    list_filter = ("status", "channel")
    list_select_related = ("member", "transaction", "requested_by", "approved_by")
    exact_search_fields = ("member__external_id", "transaction__external_id")
    search_fields = ("transaction__external_id",)  # shows the box; matching is exact
    search_help_text = "Exact customer id, bill number or claim id."
    ordering = ("-created_at", "-id")
    actions = ["approve_selected", "reject_selected", "retry_selected"]
    fieldsets = [
        ("Claim", {"fields": ("status_badge", "member_link", "channel", "note", "requested_by", "created_at")}),
        ("Purchase", {"fields": ("bill_link", "purchase_date", "purchase_amount", "purchase_store")}),
        ("Preview at submission", {"fields": ("preview_points", "preview_html")}),
        (
            "Decision",
            {"fields": ("approved_by", "approved_at", "auto_approved", "rejected_by", "rejection_reason")},
        ),
        (
            "Processing",
            {"fields": ("processed_at", "points_awarded", "breakdown_html", "ledger_entry_link", "error", "attempts")},
        ),
    ]
    readonly_fields = (
        "status_badge",
        "member_link",
        "bill_link",
        "purchase_date",
        "purchase_amount",
        "purchase_store",
        "preview_html",
        "breakdown_html",
        "ledger_entry_link",
    )

    # --- columns -----------------------------------------------------------------------------
    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return _status_badge(obj)

    @admin.display(description="Member", ordering="member")
    def member_link(self, obj):
        return admin_link(obj.member)

    @admin.display(description="Bill", ordering="transaction__external_id")
    def bill_link(self, obj):
        return admin_link(obj.transaction, obj.transaction.external_id)

    @admin.display(description="Purchase date", ordering="transaction__occurred_at")
    def purchase_date(self, obj):
        return timezone.localtime(obj.transaction.occurred_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="Amount", ordering="transaction__amount")
    def purchase_amount(self, obj):
        return f"{obj.transaction.amount} {obj.transaction.currency}"

    @admin.display(description="Store")
    def purchase_store(self, obj):
        return obj.transaction.store or "-"

    @admin.display(description="Points", ordering="preview_points")
    def points_preview(self, obj):
        return points_by_metric(obj.preview)  # per metric: points and status credits never summed

    @admin.display(description="Filed by", ordering="requested_by")
    def filed_by(self, obj):
        return obj.requested_by

    @admin.display(description="Waiting", ordering="created_at")
    def age(self, obj):
        return timesince(obj.created_at)

    @admin.display(description="Breakdown")
    def preview_summary(self, obj):
        return _summary(obj.preview)

    @admin.display(description="Preview breakdown")
    def preview_html(self, obj):
        return render_breakdown(obj.preview)

    @admin.display(description="Processed breakdown")
    def breakdown_html(self, obj):
        return render_breakdown(obj.breakdown)

    @admin.display(description="Ledger entry")
    def ledger_entry_link(self, obj):
        if not obj.ledger_entry_id:
            return "-"
        return admin_link(None, f"#{obj.ledger_entry_id}", model_name="ledgerentry", pk=obj.ledger_entry_id)

    # --- the approval queue: this changelist, submitted claims only, oldest first ---------------
    def _is_queue(self, request) -> bool:
        return getattr(request, "_retro_queue", False)

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if self._is_queue(request):
            qs = qs.filter(status=RetroClaim.Status.SUBMITTED)
        return qs

    def get_ordering(self, request):
        return ("created_at", "id") if self._is_queue(request) else super().get_ordering(request)

    def get_list_display(self, request):
        return self.queue_list_display if self._is_queue(request) else super().get_list_display(request)

    def get_list_filter(self, request):
        return () if self._is_queue(request) else super().get_list_filter(request)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if self._is_queue(request):
            actions.pop("retry_selected", None)
        return actions

    def queue_view(self, request):
        request._retro_queue = True
        return self.changelist_view(
            request,
            extra_context={
                "title": "Retro claims waiting for approval",
                "subtitle": None,
                "retro_queue": True,
                "can_approve": request.user.has_perm(APPROVE_PERM),
            },
        )

    def changelist_view(self, request, extra_context=None):
        extra = {"queue_url": reverse(f"admin:{self._url_name('queue')}")}
        extra.update(extra_context or {})
        return super().changelist_view(request, extra_context=extra)

    # --- bulk actions ----------------------------------------------------------------------------
    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm(APPROVE_PERM)

    def _each(self, request, queryset, verb: str, call: Callable[[RetroClaim], object]) -> None:
        """Run a service per claim; report the successes together and each failure with its reason."""
        done, failed = [], 0
        for claim in queryset.select_related("transaction").order_by("created_at", "id"):
            try:
                call(claim)
            except DomainError as exc:
                failed += 1
                self.message_user(
                    request,
                    f"Claim #{claim.pk} (bill {claim.transaction.external_id}) not {verb.lower()}: "
                    f"{exc.detail} [{exc.code}]",
                    messages.ERROR,
                )
            else:
                done.append(f"#{claim.pk}")
        if done:
            tail = " Points are credited in the background." if verb in ("Approved", "Retried") else ""
            self.message_user(request, f"{verb} {len(done)} claim(s): {', '.join(done)}.{tail}", messages.SUCCESS)
        elif not failed:
            self.message_user(request, "No claims selected.", messages.WARNING)

    @admin.action(description="Approve selected claims", permissions=["approve"])
    def approve_selected(self, request, queryset):
        self._each(request, queryset, "Approved", lambda c: services.approve_retro_claim(claim=c, actor=request.user))

    @admin.action(description="Retry selected failed claims", permissions=["approve"])
    def retry_selected(self, request, queryset):
        def retry(claim: RetroClaim) -> None:
            if claim.status != RetroClaim.Status.FAILED:
                raise Conflict(f"Only failed claims can be retried; this one is {claim.status}.")
            services.approve_retro_claim(claim=claim, actor=request.user)

        self._each(request, queryset, "Retried", retry)

    @admin.action(description="Reject selected claims…", permissions=["approve"])
    def reject_selected(self, request, queryset):
        form = RejectClaimsForm(request.POST if request.POST.get("confirm") == "yes" else None)
        if form.is_bound and form.is_valid():
            reason = form.cleaned_data["reason"]
            self._each(
                request,
                queryset,
                "Rejected",
                lambda c: services.reject_retro_claim(claim=c, actor=request.user, reason=reason),
            )
            return None  # back to the list
        claims = list(queryset.select_related("member", "transaction").order_by("created_at", "id"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Reject retro claims",
            "claims": claims,
            "form": form,
            "action": "reject_selected",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
            "back_url": request.get_full_path(),
        }
        return TemplateResponse(request, "admin/retro/retroclaim/reject_confirmation.html", context)

    # --- buttons on the claim page ---------------------------------------------------------------
    def _url_name(self, suffix: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{suffix}"

    def get_urls(self):
        return [
            path("queue/", self.admin_site.admin_view(self.queue_view), name=self._url_name("queue")),
            path(
                "<path:object_id>/approve/",
                self.admin_site.admin_view(self.approve_view),
                name=self._url_name("approve"),
            ),
            path(
                "<path:object_id>/reject/",
                self.admin_site.admin_view(self.reject_view),
                name=self._url_name("reject"),
            ),
        ] + super().get_urls()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            decidable = obj.status in (RetroClaim.Status.SUBMITTED, RetroClaim.Status.FAILED)
            context.update(
                {
                    "claim_panel": True,
                    "can_decide": decidable and request.user.has_perm(APPROVE_PERM),
                    "own_claim": obj.requested_by_id == request.user.pk,
                    "approve_url": reverse(f"admin:{self._url_name('approve')}", args=[obj.pk]),
                    "reject_url": reverse(f"admin:{self._url_name('reject')}", args=[obj.pk]),
                    "reject_form": RejectClaimsForm(),
                }
            )
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def _claim_for_action(self, request, object_id) -> RetroClaim:
        claim = self.get_object(request, unquote(object_id))
        if claim is None:
            raise Http404("No such claim.")
        if not (self.has_view_permission(request, claim) and request.user.has_perm(APPROVE_PERM)):
            raise PermissionDenied
        return claim

    def _back(self, claim: RetroClaim) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse(f"admin:{self._url_name('change')}", args=[claim.pk]))

    def approve_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        claim = self._claim_for_action(request, object_id)
        retry = claim.status == RetroClaim.Status.FAILED
        try:
            services.approve_retro_claim(claim=claim, actor=request.user)
        except DomainError as exc:
            self.message_user(request, f"Not approved. {exc.detail}", messages.ERROR)
        else:
            verb = "Retried" if retry else "Approved"
            self.message_user(
                request, f"{verb} claim #{claim.pk}; the points are credited in the background.", messages.SUCCESS
            )
        return self._back(claim)

    def reject_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        claim = self._claim_for_action(request, object_id)
        form = RejectClaimsForm(request.POST)
        if not form.is_valid():
            self.message_user(request, f"Not rejected. {form_errors_text(form)}", messages.ERROR)
            return self._back(claim)
        try:
            services.reject_retro_claim(claim=claim, actor=request.user, reason=form.cleaned_data["reason"])
        except DomainError as exc:
            self.message_user(request, f"Not rejected. {exc.detail}", messages.ERROR)
        else:
            self.message_user(request, f"Rejected claim #{claim.pk}.", messages.SUCCESS)
        return self._back(claim)


# --- "File a retro claim" on the member page ---------------------------------------------------


def _panel_context(request, member) -> dict | None:
    user = request.user
    if not user.has_perm(FILE_PERM):
        return None
    searching = any(key.startswith(f"{RetroSearchForm.prefix}-") for key in request.GET)
    form = RetroSearchForm(request.GET if searching else None)
    results = []
    if searching and form.has_criteria():
        found = form.search(limit=PANEL_LIMIT)
        live = dict(
            RetroClaim.objects.filter(transaction__in=found, status__in=RetroClaim.LIVE_STATUSES).values_list(
                "transaction_id", "id"
            )
        )
        results = [{"txn": txn, "claim_id": live.get(txn.pk)} for txn in found]
    claims = list(
        RetroClaim.objects.filter(member=member)
        .select_related("transaction", "requested_by")
        .order_by("-created_at", "-id")[:PANEL_LIMIT]
    )
    query = {k: v for k, v in request.GET.items() if k.startswith(f"{RetroSearchForm.prefix}-")}
    return {
        "form": form,
        "searched": searching and form.is_valid(),
        "needs_criteria": searching and form.is_valid() and not form.has_criteria(),
        "results": results,
        "limit": PANEL_LIMIT,
        "claims": claims,
        "claim_url": reverse("admin:loyalty_member_retro_claim", args=[member.pk]),
        "clear_url": reverse("admin:loyalty_member_change", args=[member.pk]) + "#panel-retro",
        "next": urlencode(query),
        "retro_enabled": ProgramSettings.objects.filter(pk=1, retro_enabled=True).exists(),
        "can_view_claims": user.has_perm("retro.view_retroclaim"),
        "claims_url": reverse("admin:retro_retroclaim_changelist") + "?" + urlencode({"q": member.external_id}),
    }


def _panel_urls(member_admin) -> list:
    def file_claim_view(request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        member = member_admin.get_object(request, unquote(object_id))
        if member is None:
            raise Http404("No such member.")
        if not (member_admin.has_view_or_change_permission(request, member) and request.user.has_perm(FILE_PERM)):
            raise PermissionDenied
        form = FileClaimForm(request.POST)
        query = QueryDict(request.POST.get("next", ""))
        keep = {k: v for k, v in query.items() if k.startswith(f"{RetroSearchForm.prefix}-")}
        back = reverse("admin:loyalty_member_change", args=[member.pk])
        back += ("?" + urlencode(keep) if keep else "") + "#panel-retro"
        if not form.is_valid():
            member_admin.message_user(
                request,
                "No claim filed: that purchase no longer exists or already belongs to a member.",
                messages.ERROR,
            )
            return HttpResponseRedirect(back)
        txn = form.cleaned_data["transaction"]
        try:
            claim = services.submit_retro_claim(
                transaction_=txn,
                member=member,
                actor=request.user,
                channel=RetroClaim.Channel.ADMIN,
                note=form.cleaned_data["note"].strip(),
            )
        except DomainError as exc:
            member_admin.message_user(
                request, f"No claim filed for bill {txn.external_id}. {exc.detail}", messages.ERROR
            )
            return HttpResponseRedirect(back)
        what = _summary(claim.preview)
        then = "It was approved automatically." if claim.auto_approved else "An approver must approve it."
        member_admin.message_user(
            request,
            f"Retro claim #{claim.pk} filed for bill {txn.external_id}: preview {claim.preview_points} points "
            f"({what}). {then}",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(back)

    return [
        path(
            "<path:object_id>/retro-claim/",
            member_admin.admin_site.admin_view(file_claim_view),
            name="loyalty_member_retro_claim",
        )
    ]


register_member_panel(
    MemberPanel(
        key="retro",
        title="Retro claims",
        template="admin/retro/member_panel.html",
        context=_panel_context,
        order=50,
        urls=_panel_urls,
        actions=(
            PageAction(
                "loyalty_member_retro_claim", "File a retro claim (member page)", ("loyalty.view_member", FILE_PERM)
            ),
        ),
    )
)
