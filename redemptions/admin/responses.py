"""The Redemptions and Awards screens, the approval queue, bulk actions and import/export.

Rows are read-only here: every change goes through ``redemptions.services`` (actions on the list,
buttons on the change page, imports), which check permissions, transitions and four-eyes.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from import_export.admin import ExportMixin
from import_export.formats import base_formats

from loyalty.admin.base import (
    BigListMixin,
    ChangeListExportMixin,
    PageAction,
    ReadOnlyInline,
    ServiceManagedHistoryAdmin,
    admin_link,
)
from loyalty.models import Reward

from .. import resources, selectors, services
from ..forms import (
    ChangeAwardStatusForm,
    ChangeFulfillmentForm,
    ChangeStatusForm,
    ImportForm,
    ReasonForm,
    RollbackForm,
)
from ..models import Award, Redemption, Rollback
from .common import (
    CreatedWithinFilter,
    FastActionCheckboxMixin,
    changelist_url,
    form_action,
    perm_checker,
    simple_action,
)

APPROVE = "redemptions.approve_redemption"
PROCESS = "redemptions.change_redemption"
FULFIL = "redemptions.change_fulfillment"
ROLL_BACK = "redemptions.add_rollback"

# --- actions (each row through one service call) ----------------------------------------------

approve_selected = simple_action(
    name="approve_selected",
    description="Approve selected",
    permission="approve",
    verb="approved",
    run=lambda obj, user: services.approve_redemption(redemption=obj, actor=user),
)

reject_selected = form_action(
    name="reject_selected",
    description="Reject selected",
    permission="approve",
    form_class=ReasonForm,
    verb="rejected",
    intro="Points and stock go back; the member cannot redeem this reward again. The member is told by email.",
    run=lambda obj, user, data: services.reject_redemption(redemption=obj, actor=user, reason=data["reason"]),
)

return_selected = form_action(
    name="return_selected",
    description="Return selected",
    permission="approve",
    form_class=ReasonForm,
    verb="returned",
    intro="Points and stock go back; the member may redeem the reward again. The member is told by email.",
    run=lambda obj, user, data: services.return_redemption(redemption=obj, actor=user, reason=data["reason"]),
)

change_status_selected = form_action(
    name="change_status_selected",
    description="Change processing status",
    permission="process",
    form_class=ChangeStatusForm,
    verb="moved",
    intro="Canceling gives the points and stock back and voids an unused issued code.",
    button="Change status",
    run=lambda obj, user, data: services.change_status(
        redemption=obj, status=data["status"], actor=user, reason=data["reason"]
    ),
)

change_fulfillment_selected = form_action(
    name="change_fulfillment_selected",
    description="Change fulfillment status",
    permission="fulfil",
    form_class=ChangeFulfillmentForm,
    verb="moved",
    intro="Shipped and delivered are emailed to the member.",
    button="Change fulfillment",
    run=lambda obj, user, data: services.change_fulfillment(
        redemption=obj,
        fulfillment_status=data["fulfillment_status"],
        tracking_ref=data["tracking_ref"],
        actor=user,
        reason=data["reason"],
    ),
)

change_award_status_selected = form_action(
    name="change_award_status_selected",
    description="Change award status",
    permission="process",
    form_class=ChangeAwardStatusForm,
    verb="moved",
    button="Change award status",
    run=lambda obj, user, data: services.change_award_status(
        redemption=obj, award_status=data["award_status"], actor=user, reason=data["reason"]
    ),
)

rollback_selected = form_action(
    name="rollback_selected",
    description="Roll back",
    permission="rollback",
    form_class=RollbackForm,
    verb="rolled back (or sent for approval)",
    intro="Points come back with their original lots, an unused issued code is voided and the member is told. "
    "Fraud, large amounts and repeated rollbacks wait for a second person.",
    button="Roll back",
    run=lambda obj, user, data: services.rollback_redemption(
        redemption=obj, reason=data["reason"], points=data["points"], note=data["note"], actor=user
    ),
)


class RollbackInline(ReadOnlyInline):
    model = Rollback
    fk_name = "redemption"
    fields = ("status", "reason", "full", "points_requested", "points_returned", "requested_by", "approved_by")
    readonly_fields = fields
    verbose_name_plural = "rollbacks"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("requested_by", "approved_by")


class ResponseAdminBase(FastActionCheckboxMixin, BigListMixin, ServiceManagedHistoryAdmin):
    """What the Redemptions and Awards screens share. View-only rows; actions call services."""

    change_form_template = "admin/redemptions/redemption/change_form.html"
    list_select_related = ("member", "reward", "issued_code")
    ordering = ("-created_at", "-id")
    search_fields = ("member__external_id",)  # shows the box; matching is get_search_results (exact)
    search_help_text = "Exact customer id, email, issued code, redemption id or legacy reference."
    list_display_links = ("id",)
    inlines = [RollbackInline]
    readonly_fields = ("member_link", "code_text", "net_points")
    fieldsets = [
        (None, {"fields": ("kind", "member_link", "reward", "quantity", "channel", "created_by", "created_at")}),
        ("Points", {"fields": ("points_spent", "metric", "points_returned", "net_points", "ledger_entry")}),
        (
            "Statuses",
            {
                "fields": (
                    "status",
                    "award_status",
                    "approval_status",
                    "decided_by",
                    "decision_reason",
                    "fulfillment_status",
                    "tracking_ref",
                )
            },
        ),
        ("Code and validity", {"fields": ("code_text", "expires_at")}),
        ("Other", {"fields": ("reason", "external_ref", "stock_returned", "updated_at")}),
    ]
    actions = [
        approve_selected,
        reject_selected,
        return_selected,
        change_status_selected,
        change_fulfillment_selected,
        rollback_selected,
    ]

    has_approve_permission = perm_checker(APPROVE)
    has_process_permission = perm_checker(PROCESS)
    has_fulfil_permission = perm_checker(FULFIL)
    has_rollback_permission = perm_checker(ROLL_BACK)

    # --- read-only rows ----------------------------------------------------------------------
    def has_add_permission(self, request):
        return False  # redeem from the member page (the seed: never from this screen)

    def has_change_permission(self, request, obj=None):
        # The change page is view-only; list-level (obj=None) stays for the actions' sake.
        return False if obj is not None else super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    # --- columns -------------------------------------------------------------------------------
    @admin.display(description="Member", ordering="member")
    def member_link(self, obj):
        return admin_link(obj.member)

    @admin.display(description="Issued code")
    def code_text(self, obj):
        return obj.issued_code.code if obj.issued_code_id else ""

    @admin.display(description="Net points")
    def net_points(self, obj):
        return obj.points_spent - obj.points_returned

    # --- search: exact, index-friendly ---------------------------------------------------------
    def get_search_results(self, request, queryset, search_term):
        q = selectors.search_filter(search_term)
        if q is None:
            return queryset, False
        return queryset.filter(q), False

    # --- the change page -----------------------------------------------------------------------
    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member", "reward", "issued_code")

    def response_actions(self, request, obj) -> list[dict]:
        """The buttons on a change page: the actions that make sense for this row and this user."""
        user = request.user
        out = []
        if obj.approval_status == Redemption.ApprovalStatus.SUBMITTED and user.has_perm(APPROVE):
            out += [("approve_selected", "Approve"), ("reject_selected", "Reject…"), ("return_selected", "Return…")]
        if user.has_perm(PROCESS) and Redemption.STATUS_TRANSITIONS.get(obj.status):
            out.append(("change_status_selected", "Change status…"))
            if obj.kind == Redemption.Kind.AWARD and Redemption.AWARD_TRANSITIONS.get(obj.award_status):
                out.append(("change_award_status_selected", "Change award status…"))
        if user.has_perm(FULFIL) and obj.reward.requires_fulfillment and obj.status != Redemption.Status.CANCELED:
            out.append(("change_fulfillment_selected", "Change fulfillment…"))
        if user.has_perm(ROLL_BACK) and obj.status != Redemption.Status.CANCELED and obj.points_spent:
            out.append(("rollback_selected", "Roll back…"))
        available = self.get_actions(request)
        return [{"name": name, "label": label} for name, label in out if name in available]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        if obj is not None:
            extra_context["response_actions"] = self.response_actions(request, obj)
            extra_context["actions_url"] = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
            extra_context["action_checkbox_name"] = helpers.ACTION_CHECKBOX_NAME
            extra_context["member_url"] = reverse("admin:loyalty_member_change", args=[obj.member_id])
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Redemption)
class RedemptionAdmin(ChangeListExportMixin, ExportMixin, ResponseAdminBase):
    """The Redemptions screen: redemptions plus claimed awards; the approval queue; exports and imports."""

    resource_classes = [resources.RedemptionResource]
    page_actions = (
        PageAction(
            "redemptions_redemption_import",
            "Import fulfillment",
            (FULFIL,),
            on_object=False,
            kwargs=(("kind", "fulfillment"),),
        ),
        PageAction(
            "redemptions_redemption_import",
            "Import legacy redemptions",
            ("redemptions.import_redemptions",),
            on_object=False,
            kwargs=(("kind", "legacy"),),
        ),
    )
    export_formats = [base_formats.CSV, base_formats.XLSX]
    import_export_change_list_template = None  # our own change list template shows the export link
    change_list_template = "admin/redemptions/redemption/change_list.html"
    list_display = (
        "id",
        "kind",
        "member_link",
        "reward",
        "points_spent",
        "status",
        "approval_status",
        "fulfillment_status",
        "created_at",
    )  # quantity, award status, issued code: on the redemption's page (the list fits 1366 px)
    list_filter = (
        CreatedWithinFilter,
        "kind",
        "status",
        "approval_status",
        "fulfillment_status",
        "award_status",
        "channel",
        "reward",
    )

    QUEUE_DISPLAY = (
        "id",
        "created_at",
        "kind",
        "member_link",
        "member_balance",
        "reward",
        "quantity",
        "points_spent",
        "created_by",
        "member_history",
    )

    def _in_queue(self, request) -> bool:
        return getattr(request, "redemptions_queue", False)

    def get_queryset(self, request):
        if self._in_queue(request):
            return selectors.approval_queue()
        return super().get_queryset(request).filter(selectors.REDEMPTIONS_SCREEN)

    def get_ordering(self, request):
        return ("created_at", "id") if self._in_queue(request) else self.ordering

    def get_list_display(self, request):
        return self.QUEUE_DISPLAY if self._in_queue(request) else self.list_display

    def get_list_filter(self, request):
        return (CreatedWithinFilter, "kind", "reward") if self._in_queue(request) else self.list_filter

    def get_actions(self, request):
        actions = super().get_actions(request)
        if self._in_queue(request):
            return {k: v for k, v in actions.items() if k in ("approve_selected", "reject_selected", "return_selected")}
        return actions

    @admin.display(description="Balance")
    def member_balance(self, obj):
        balance = getattr(obj, "member_balance", None)
        code = obj.metric.code if obj.metric_id else ""
        if balance is None:
            return format_html('<span class="quiet">0 {}</span>', code)
        return format_html('<span class="member-balance">{} {}</span>', f"{balance:,}", code)

    @admin.display(description="History")
    def member_history(self, obj):
        return format_html(
            '<a href="{}">ledger</a> · <a href="{}">responses</a>',
            changelist_url("admin:loyalty_ledgerentry_changelist", member__id__exact=obj.member_id),
            changelist_url("admin:redemptions_redemption_changelist", member__id__exact=obj.member_id),
        )

    # --- extra views ---------------------------------------------------------------------------
    def get_urls(self):
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("queue/", view(self.queue_view), name=f"{info}_queue"),
            path("export.csv", view(self.stream_csv_view), name=f"{info}_export_csv"),
            path("import/<str:kind>/", view(self.import_view), name=f"{info}_import"),
        ] + super().get_urls()

    def queue_view(self, request):
        """Approvers' queue: submitted redemptions and awards, oldest first, with the member's balance.
        The normal change list (filters, actions, intermediate pages) in queue mode."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        request.redemptions_queue = True
        return self.changelist_view(
            request,
            extra_context={
                "title": "Approval queue",
                "queue": True,
                "changelist_url": reverse("admin:redemptions_redemption_changelist"),
            },
        )

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        opts = self.opts
        extra_context.setdefault("queue_url", reverse(f"admin:{opts.app_label}_{opts.model_name}_queue"))
        extra_context["waiting"] = (
            Redemption.objects.filter(approval_status=Redemption.ApprovalStatus.SUBMITTED).order_by()[:1000].count()
        )
        extra_context["can_import_fulfillment"] = request.user.has_perm(FULFIL)
        extra_context["can_import_legacy"] = resources.can_import_legacy(request.user)
        return super().changelist_view(request, extra_context)

    def has_export_permission(self, request):
        return self.has_view_or_change_permission(request)

    def stream_csv_view(self, request):
        """The filtered list as CSV of any size, streamed (values_list + iterator), same filters and
        search as the change list (``?status__exact=...&q=...``)."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        queryset = self.get_export_queryset(request)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        return resources.stream_export(queryset, filename=f"redemptions-{stamp}.csv")

    EXPORT_MAX_ROWS = 50_000

    def get_data_for_export(self, request, queryset, **kwargs):
        # CSV/XLSX through import-export builds the whole file in memory: bounded. Bigger lists use
        # the streamed CSV. (export_action shows a ValueError as an error message.)
        if queryset.order_by()[: self.EXPORT_MAX_ROWS + 1].count() > self.EXPORT_MAX_ROWS:
            raise ValueError(
                f"More than {self.EXPORT_MAX_ROWS:,} rows: narrow the filters or use “Stream CSV (large lists)”."
            )
        return super().get_data_for_export(request, queryset, **kwargs)

    # --- imports: upload → dry run with preview and row errors → confirm (all or nothing) -------
    def import_view(self, request, kind: str):
        spec = resources.IMPORTS.get(kind)
        if spec is None:
            raise PermissionDenied
        allowed = request.user.has_perm(FULFIL) if kind == "fulfillment" else resources.can_import_legacy(request.user)
        if not allowed:
            raise PermissionDenied
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        form = ImportForm()
        result = token = None
        file_error = ""
        if request.method == "POST" and "confirm" in request.POST:
            try:
                rows = resources.unsign_rows(request.POST.get("rows", ""), kind=kind)
            except signing.BadSignature:
                file_error = "The preview expired or was altered; upload the file again."
            else:
                result = spec["run"](rows, actor=request.user, dry_run=False)
                if result.ok:
                    self.message_user(
                        request, f"Imported {result.applied} rows ({spec['title'].lower()}).", messages.SUCCESS
                    )
                else:
                    self.message_user(request, f"Nothing imported: {len(result.errors)} row(s) failed.", messages.ERROR)
        elif request.method == "POST":
            form = ImportForm(request.POST, request.FILES)
            if form.is_valid():
                try:
                    rows = resources.read_rows(
                        form.cleaned_data["import_file"], columns=spec["columns"], aliases=spec["aliases"]
                    )
                except resources.FileError as exc:
                    file_error = str(exc)
                else:
                    result = spec["run"](rows, actor=request.user, dry_run=True)
                    if result.ok:
                        token = resources.sign_rows(rows, kind=kind)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": spec["title"],
            "spec": spec,
            "kind": kind,
            "form": form,
            "result": result,
            "token": token,
            "file_error": file_error,
            "columns": spec["columns"],
            "changelist_url": reverse("admin:redemptions_redemption_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/redemptions/redemption/import.html", context)


@admin.register(Award)
class AwardAdmin(ResponseAdminBase):
    """The Awards screen: awards of every award status."""

    change_list_template = "admin/redemptions/award/change_list.html"
    list_display = (
        "id",
        "member_link",
        "reward",
        "award_status",
        "approval_status",
        "fulfillment_status",
        "reason",
        "created_at",
    )  # quantity, status, issued code: on the award's page (the list fits 1366 px)
    list_filter = (
        CreatedWithinFilter,
        "award_status",
        "approval_status",
        "status",
        "fulfillment_status",
        "reward",
    )
    actions = [
        approve_selected,
        reject_selected,
        return_selected,
        change_award_status_selected,
        change_status_selected,
        change_fulfillment_selected,
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(kind=Redemption.Kind.AWARD)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("redemptions.view_award") or request.user.has_perm("redemptions.view_redemption")

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else request.user.has_perm(PROCESS)


def reward_responses_url(reward: Reward) -> str:
    return changelist_url("admin:redemptions_redemption_changelist", reward__id__exact=reward.pk)
