"""Admin for retro claims: claim pages, the approvers' queue, and "File a retro claim" on the member page.

Every state change goes through ``retro.services`` (submit, approve, reject); a refused row is
reported with the service's reason, the others go ahead.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from loyalty.admin.earning import render_breakdown
from loyalty.admin.panels import MemberPanel, register_member_panel
from loyalty.kernel import Conflict
from loyalty.kernel.admin import (
    BigListMixin,
    ExactSearchMixin,
    ObjectAction,
    ObjectActionsMixin,
    QueueMixin,
    ReadOnlyAdminMixin,
    ServiceManagedHistoryAdmin,
    bulk_action,
    link,
)
from loyalty.models import ProgramSettings
from loyalty.templatetags.insight import points_by_metric

from . import selectors, services
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


def claim_action(*, verb: str, **kwargs):
    """A bulk action on claims: oldest first, every refusal with the claim, its bill and the code."""
    tail = " Points are credited in the background." if verb in ("Approved", "Retried") else ""
    return bulk_action(
        permission="approve",
        done=f"{verb} {{n}} claim(s): {{ids}}.{tail}",
        failed=f"{{label}} not {verb.lower()}: {{detail}} [{{code}}]",
        label=lambda c: f"Claim #{c.pk} (bill {c.transaction.external_id})",
        empty="No claims selected.",
        prepare=lambda qs: qs.select_related("member", "transaction").order_by("created_at", "id"),
        **kwargs,
    )


def _retry(claim: RetroClaim, user) -> None:
    if claim.status != RetroClaim.Status.FAILED:
        raise Conflict(f"Only failed claims can be retried; this one is {claim.status}.")
    services.approve_retro_claim(claim=claim, actor=user)


class _Decision(ObjectAction):
    permissions = (APPROVE_PERM,)

    def available(self, request, claim) -> bool:
        decidable = claim.status in (RetroClaim.Status.SUBMITTED, RetroClaim.Status.FAILED)
        return decidable and self.has_permission(request, claim)


class ApproveClaim(_Decision):
    name = "approve"
    label = "Approve"
    roles_label = "Approve (claim page)"
    refused = "Not approved."

    def run(self, request, claim, data):
        verb = "Retried" if claim.status == RetroClaim.Status.FAILED else "Approved"
        services.approve_retro_claim(claim=claim, actor=request.user)
        return f"{verb} claim #{claim.pk}; the points are credited in the background."


class RejectClaim(_Decision):
    name = "reject"
    label = "Reject"
    roles_label = "Reject (claim page)"
    form_class = RejectClaimsForm
    refused = "Not rejected."

    def run(self, request, claim, data):
        services.reject_retro_claim(claim=claim, actor=request.user, reason=data["reason"])
        return f"Rejected claim #{claim.pk}."


@admin.register(RetroClaim)
class RetroClaimAdmin(
    QueueMixin, ObjectActionsMixin, ExactSearchMixin, BigListMixin, ReadOnlyAdminMixin, ServiceManagedHistoryAdmin
):
    object_actions = (ApproveClaim(), RejectClaim())
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
        "points_preview",
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
        return link(obj.member)

    @admin.display(description="Bill", ordering="transaction__external_id")
    def bill_link(self, obj):
        return link(obj.transaction, obj.transaction.external_id)

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
        return link("loyalty.ledgerentry", f"#{obj.ledger_entry_id}", pk=obj.ledger_entry_id)

    # --- the approval queue: this changelist, submitted claims only, oldest first ---------------
    queue_title = "Retro claims waiting for approval"
    queue_list_filter = ()
    queue_actions = ("approve_selected", "reject_selected")

    def queue_queryset(self, request, queryset):
        return selectors.claim_queue()

    def queue_context(self, request):
        return {"retro_queue": True, "can_approve": request.user.has_perm(APPROVE_PERM)}

    # --- bulk actions ----------------------------------------------------------------------------
    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm(APPROVE_PERM)

    approve_selected = claim_action(
        name="approve_selected",
        description="Approve selected claims",
        verb="Approved",
        run=lambda claim, user: services.approve_retro_claim(claim=claim, actor=user),
    )
    retry_selected = claim_action(
        name="retry_selected",
        description="Retry selected failed claims",
        verb="Retried",
        run=lambda claim, user: _retry(claim, user),
    )
    reject_selected = claim_action(
        name="reject_selected",
        description="Reject selected claims…",
        verb="Rejected",
        form_class=RejectClaimsForm,
        title="Reject retro claims",
        intro="The member gets no points for these claims; the reason is recorded on each claim.",
        button="Reject",
        form_id="reject-confirm-form",
        describe=lambda c: (
            f"#{c.pk} {c.get_status_display()}: {c.member}, bill {c.transaction.external_id}, "
            f"{c.transaction.amount} {c.transaction.currency}, preview {points_by_metric(c.preview)}"
        ),
        run=lambda claim, user, data: services.reject_retro_claim(claim=claim, actor=user, reason=data["reason"]),
    )

    # --- buttons on the claim page ---------------------------------------------------------------
    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context.update({"claim_panel": True, "own_claim": obj.requested_by_id == request.user.pk})
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


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


class FileClaim(ObjectAction):
    """ "File a retro claim" in the member page's panel; back to the panel with the search kept."""

    name = "retro_claim"
    label = "File a claim"
    roles_label = "File a retro claim (member page)"
    permissions = (FILE_PERM,)
    form_class = FileClaimForm

    def invalid_message(self, request, member, form) -> str:
        return "No claim filed: that purchase no longer exists or already belongs to a member."

    def refused_message(self, request, member, data, exc) -> str:
        return f"No claim filed for bill {data['transaction'].external_id}. {exc.detail}"

    def back_url(self, model_admin, request, member) -> str:
        query = QueryDict(request.POST.get("next", ""))
        keep = {k: v for k, v in query.items() if k.startswith(f"{RetroSearchForm.prefix}-")}
        back = reverse("admin:loyalty_member_change", args=[member.pk])
        return back + ("?" + urlencode(keep) if keep else "") + "#panel-retro"

    def run(self, request, member, data):
        txn = data["transaction"]
        claim = services.submit_retro_claim(
            transaction_=txn,
            member=member,
            actor=request.user,
            channel=RetroClaim.Channel.ADMIN,
            note=data["note"].strip(),
        )
        then = "It was approved automatically." if claim.auto_approved else "An approver must approve it."
        return format_html(
            "Retro claim {} filed for bill {}: preview {} ({}). {}",
            link(claim, f"#{claim.pk}"),
            txn.external_id,
            points_by_metric(claim.preview),
            _summary(claim.preview),
            then,
        )


register_member_panel(
    MemberPanel(
        key="retro",
        title="Retro claims",
        template="admin/retro/member_panel.html",
        context=_panel_context,
        order=50,
        object_actions=(FileClaim(),),
    )
)
