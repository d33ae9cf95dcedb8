"""The Redemptions and Awards screens, the approval queue, bulk actions and import/export.

Rows are read-only here: every change goes through ``redemptions.services`` (actions on the list,
buttons on the change page, imports), which check permissions, transitions and four-eyes.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import admin, messages
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from import_export.admin import ExportMixin
from import_export.formats import base_formats

from loyalty.kernel.admin import (
    BigListMixin,
    ChangeListExportMixin,
    CreatedWithinFilter,
    FastActionCheckboxMixin,
    NoDeleteMixin,
    ObjectActionsMixin,
    PageAction,
    QueueMixin,
    ReadOnlyInline,
    RowButton,
    ServiceManagedHistoryAdmin,
    bulk_action,
    changelist_url,
    link,
    perm_checker,
)
from loyalty.models import ProgramSettings, Reward

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

APPROVE = "redemptions.approve_redemption"
PROCESS = "redemptions.change_redemption"
FULFIL = "redemptions.change_fulfillment"
ROLL_BACK = "redemptions.add_rollback"

# --- actions (each row through one service call) ----------------------------------------------


INTROS = {
    "reject_selected": "Points and stock go back; the member cannot redeem this reward again. "
    "The member is told by email.",
    "return_selected": "Points and stock go back; the member may redeem the reward again. The member is told by email.",
    "change_status_selected": "Canceling gives the points and stock back and voids an unused issued code.",
    "change_fulfillment_selected": "Shipped and delivered are emailed to the member.",
    "rollback_selected": "Points come back with their original lots, an unused issued code is voided and the member "
    "is told. Fraud, large amounts and repeated rollbacks wait for a second person.",
    "approve_rollbacks": "Each rollback is checked again (code use, shipment, amounts) and executed; "
    "the member is told.",
    "reject_rollbacks": "Nothing is given back; the member is told.",
}


def response_action(
    name,
    description,
    permission,
    verb,
    service,
    form_class=None,
    button=None,
    *,
    renames=None,
    target="redemption",
    outcome=None,
    done=None,
):
    """A bulk action that calls ``services.<service>`` for each row (as ``target``), with the
    form's fields as its keyword arguments (``renames`` maps a field to another argument).
    Reported as "Moved 2: #4, #7." and, in one message, "1 could not be moved: #9: <the
    service's reason>". The confirm page's text is ``INTROS[name]``."""

    def run(obj, user, data=None):
        kwargs = {(renames or {}).get(key, key): value for key, value in (data or {}).items()}
        return getattr(services, service)(**{target: obj}, actor=user, **kwargs)

    return bulk_action(
        name=name,
        description=description,
        permission=permission,
        form_class=form_class,
        button=button,
        intro=INTROS.get(name, ""),
        run=run,
        done=done or f"{verb.capitalize()} {{n}}: {{ids}}.",
        grouped=f"{{n}} could not be {verb}: {{items}}",
        prepare=lambda qs: qs.order_by("pk"),
        outcome=outcome,
    )


approve_selected = response_action("approve_selected", "Approve selected", "approve", "approved", "approve_redemption")
reject_selected = response_action(
    "reject_selected", "Reject selected", "approve", "rejected", "reject_redemption", ReasonForm
)
return_selected = response_action(
    "return_selected", "Return selected", "approve", "returned", "return_redemption", ReasonForm
)
change_status_selected = response_action(
    "change_status_selected", "Change processing status", "process", "moved", "change_status", ChangeStatusForm,
    "Change status",
)  # fmt: skip
change_fulfillment_selected = response_action(
    "change_fulfillment_selected", "Change fulfillment status", "fulfil", "moved", "change_fulfillment",
    ChangeFulfillmentForm, "Change fulfillment",
)  # fmt: skip
change_award_status_selected = response_action(
    "change_award_status_selected", "Change award status", "process", "moved", "change_award_status",
    ChangeAwardStatusForm, "Change award status",
)  # fmt: skip
def rollback_outcome(rollback) -> str:
    """A rollback either ran or waits for a second person: the message says which."""
    if rollback.status == rollback.Status.PENDING_APPROVAL:
        return "Sent for approval (a second person must approve the rollback before anything comes back)"
    return "Rolled back (points and stock returned, the member told)"


rollback_selected = response_action(
    "rollback_selected", "Roll back", "rollback", "rolled back", "rollback_redemption", RollbackForm, "Roll back",
    outcome=rollback_outcome, done="{outcome}: {n} redemption{s}: {ids}.",
)  # fmt: skip


# --- which of them the change page offers: only where they can succeed --------------------------


def _submitted(request, obj) -> bool:
    return obj.approval_status == Redemption.ApprovalStatus.SUBMITTED and request.user.has_perm(APPROVE)


def _status_moves(request, obj) -> bool:
    return request.user.has_perm(PROCESS) and bool(Redemption.STATUS_TRANSITIONS.get(obj.status))


def _award_status_moves(request, obj) -> bool:
    return (
        _status_moves(request, obj)
        and obj.kind == Redemption.Kind.AWARD
        and bool(Redemption.AWARD_TRANSITIONS.get(obj.award_status))
    )


def _fulfillment_moves(request, obj) -> bool:
    return (
        request.user.has_perm(FULFIL) and obj.reward.requires_fulfillment and obj.status != Redemption.Status.CANCELED
    )


def rollback_available(request, obj) -> bool:
    """Roll back… is offered where the rollback policy can let it through (the service decides, and
    says why when it refuses): points were spent here, nothing waits for approval, and the status,
    the fulfillment and the window are ones the program settings allow."""
    if not request.user.has_perm(ROLL_BACK) or not obj.points_spent or obj.status == Redemption.Status.CANCELED:
        return False
    if obj.approval_status == Redemption.ApprovalStatus.SUBMITTED or obj.channel == Redemption.Channel.IMPORT:
        return False
    program = ProgramSettings.load()
    if obj.status not in program.rollback_statuses:
        return False
    if (obj.fulfillment_status or "none") not in program.rollback_fulfillment_statuses:
        return False
    if timezone.now() - obj.created_at > dt.timedelta(days=program.rollback_window_days):
        return False
    return not obj.rollbacks.filter(status=Rollback.Status.PENDING_APPROVAL).exists()


ROW_BUTTONS = (
    RowButton("approve_selected", "Approve", _submitted),
    RowButton("reject_selected", "Reject…", _submitted),
    RowButton("return_selected", "Return…", _submitted),
    RowButton("change_status_selected", "Change status…", _status_moves),
    RowButton("change_award_status_selected", "Change award status…", _award_status_moves),
    RowButton("change_fulfillment_selected", "Change fulfillment…", _fulfillment_moves),
    RowButton("rollback_selected", "Roll back…", rollback_available),
)


class RollbackInline(ReadOnlyInline):
    model = Rollback
    select_related = ("requested_by", "approved_by")
    fk_name = "redemption"
    fields = ("status", "reason", "full", "points_requested", "points_returned", "requested_by", "approved_by")
    readonly_fields = fields
    verbose_name_plural = "rollbacks"


class MemberUrlMixin:
    """The change page gets ``member_url``: the page of the row's member (a link in the template)."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        if obj is not None:
            extra_context["member_url"] = reverse("admin:loyalty_member_change", args=[obj.member_id])
        return super().change_view(request, object_id, form_url, extra_context)


class ResponseAdminBase(
    MemberUrlMixin, NoDeleteMixin, ObjectActionsMixin, FastActionCheckboxMixin, BigListMixin, ServiceManagedHistoryAdmin
):
    """What the Redemptions and Awards screens share. View-only rows; actions call services."""

    change_form_template = "admin/redemptions/redemption/change_form.html"
    list_select_related = ("member", "reward", "issued_code")
    ordering = ("-created_at", "-id")
    search_fields = ("member__external_id",)  # shows the box; matching is get_search_results (exact)
    search_help_text = "Exact customer id, email, issued code, redemption id or legacy reference."
    list_display_links = ("id",)
    inlines = [RollbackInline]
    row_buttons = ROW_BUTTONS
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

    # --- columns -------------------------------------------------------------------------------
    @admin.display(description="Member", ordering="member")
    def member_link(self, obj):
        return link(obj.member)

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


@admin.register(Redemption)
class RedemptionAdmin(QueueMixin, ChangeListExportMixin, ExportMixin, ResponseAdminBase):
    """The Redemptions screen: redemptions plus claimed awards; the approval queue; exports and imports."""

    resource_classes = [resources.RedemptionResource]
    extra_page_actions = (
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

    queue_list_display = (
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

    # --- the approval queue (QueueMixin) ------------------------------------------------------
    queue_list_filter = (CreatedWithinFilter, "kind", "reward")
    queue_actions = ("approve_selected", "reject_selected", "return_selected")

    def queue_queryset(self, request, queryset):
        """Submitted redemptions and awards, oldest first, with the member's balance."""
        return selectors.approval_queue()

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if self.in_queue(request) else queryset.filter(selectors.REDEMPTIONS_SCREEN)

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
            changelist_url("loyalty.ledgerentry", member__id__exact=obj.member_id),
            changelist_url("redemptions.redemption", member__id__exact=obj.member_id),
        )

    # --- extra views ---------------------------------------------------------------------------
    def get_urls(self):
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("export.csv", view(self.stream_csv_view), name=f"{info}_export_csv"),
            path("import/<str:kind>/", view(self.import_view), name=f"{info}_import"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
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
        """Hand-written, not an ObjectAction: three steps on one page (upload, dry run with every
        row's outcome, confirm of the signed rows), for the list rather than one object."""
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
    return changelist_url("redemptions.redemption", reward__id__exact=reward.pk)
