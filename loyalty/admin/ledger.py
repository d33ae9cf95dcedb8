"""Read-only admin for the ledger and what is derived from it.

Entries are append-only; lots, consumptions and balances are moved by ``services`` in the same
transaction as each entry. The admin can look, never touch.
"""

from __future__ import annotations

from django.contrib import admin

from loyalty.kernel.admin import BigListMixin, ExactSearchMixin, ReadOnlyAdminMixin, ReadOnlyInline, link, signed

from ..models import IdempotencyRecord, LedgerEntry, LotConsumption, PointBalance, PointLot


class MemberLinkMixin:
    @admin.display(description="Member", ordering="member")
    def member_link(self, obj):
        return link(obj.member)


class DebitConsumptionInline(ReadOnlyInline):
    """On a debit entry: which lots it took points from."""

    model = LotConsumption
    select_related = ("lot",)
    fk_name = "debit"
    fields = ("lot", "amount")
    readonly_fields = fields
    verbose_name = "points taken from a lot"
    verbose_name_plural = "points taken from lots"


class LotConsumptionInline(ReadOnlyInline):
    """On a lot: which debits consumed it."""

    model = LotConsumption
    select_related = ("debit",)
    fk_name = "lot"
    fields = ("debit", "amount")
    readonly_fields = fields
    verbose_name = "consumption"


@admin.register(LedgerEntry)
class LedgerEntryAdmin(MemberLinkMixin, ExactSearchMixin, BigListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "member_link",
        "metric",
        "kind",
        "signed_amount",
        "expires_at",
        "reason",
        "actor",
    )
    list_display_links = ("id", "created_at")
    list_filter = ("kind", "metric")
    list_select_related = ("member", "metric", "actor")
    exact_search_fields = ("member__external_id", "idempotency_key")
    search_fields = ("member__external_id",)  # shows the search box; matching is exact (ExactSearchMixin)
    search_help_text = "Exact customer id, entry id or idempotency key. Filter one member with ?member=<id>."
    fields = (
        "member",
        "metric",
        "kind",
        "amount",
        "created_at",
        "effective_at",
        "expires_at",
        "reverses",
        "source_type",
        "source_id",
        "actor",
        "reason",
        "breakdown",
        "idempotency_key",
    )
    inlines = [DebitConsumptionInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member", "metric", "actor")

    @admin.display(description="Amount", ordering="amount")
    def signed_amount(self, obj):
        return signed(obj.amount)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None and obj.amount < 0 else []


@admin.register(PointLot)
class PointLotAdmin(MemberLinkMixin, ExactSearchMixin, BigListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "member_link", "metric", "amount", "remaining", "expires_at", "created_at", "entry_link")
    list_filter = ("metric",)
    list_select_related = ("member", "metric")
    exact_search_fields = ("member__external_id",)
    search_fields = ("member__external_id",)
    search_help_text = "Exact customer id or lot id."
    ordering = ("-id",)
    inlines = [LotConsumptionInline]

    @admin.display(description="Credit entry", ordering="entry")
    def entry_link(self, obj):
        return link("loyalty.ledgerentry", f"#{obj.entry_id}", pk=obj.entry_id)


@admin.register(PointBalance)
class PointBalanceAdmin(MemberLinkMixin, ExactSearchMixin, BigListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "member_link", "metric", "balance", "pending", "debt", "updated_at")
    list_filter = ("metric",)
    list_select_related = ("member", "metric")
    exact_search_fields = ("member__external_id",)
    search_fields = ("member__external_id",)
    search_help_text = "Exact customer id."
    ordering = ("-id",)


@admin.register(LotConsumption)
class LotConsumptionAdmin(ExactSearchMixin, BigListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "debit_link", "lot_link", "amount")
    id_search_fields = ("debit_id", "lot_id")
    search_fields = ("debit__id",)
    search_help_text = "Debit entry id or lot id."
    ordering = ("-id",)

    @admin.display(description="Debit entry", ordering="debit")
    def debit_link(self, obj):
        return link("loyalty.ledgerentry", f"#{obj.debit_id}", pk=obj.debit_id)

    @admin.display(description="Lot", ordering="lot")
    def lot_link(self, obj):
        return link("loyalty.pointlot", f"lot {obj.lot_id}", pk=obj.lot_id)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ExactSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "user", "method", "path", "response_status", "locked_until", "key")
    list_select_related = ("user",)
    exact_search_fields = ("key",)
    search_fields = ("key",)
    search_help_text = "Exact idempotency key."
    show_full_result_count = False
