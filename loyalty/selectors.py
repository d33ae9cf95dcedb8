"""Reusable reads of the loyalty core."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from .models import LedgerEntry, LotConsumption, Member, PointBalance, PointLot, Tier, TierMembership


def tier_at(member: Member, when: dt.datetime) -> Tier | None:
    """The member's tier at a moment, from the half-open tier history."""
    membership = (
        TierMembership.objects.select_related("tier")
        .filter(member=member, valid_from__lte=when)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=when))
        .order_by("-valid_from")
        .first()
    )
    return membership.tier if membership else None


def member_balances(member: Member, *, expiring_limit: int = 3) -> list[dict]:
    """Per metric: spendable balance, pending, debt and the next expiries with amounts."""
    now = timezone.now()
    rows = []
    for balance in PointBalance.objects.filter(member=member).select_related("metric").order_by("metric__code"):
        expiring = (
            PointLot.objects.filter(member=member, metric=balance.metric, remaining__gt=0, expires_at__isnull=False)
            .filter(expires_at__gt=now)
            .values("expires_at")
            .annotate(amount=Sum("remaining"))
            .order_by("expires_at")[:expiring_limit]
        )
        rows.append({
            "metric": balance.metric.code,
            "metric_name": balance.metric.name,
            "balance": balance.balance,
            "pending": balance.pending,
            "debt": balance.debt,
            "expiring": [{"expires_at": e["expires_at"], "amount": e["amount"]} for e in expiring],
        })
    return rows


def member_ledger(member: Member) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(member=member).select_related("metric", "actor").order_by("-created_at", "-id")


@dataclass
class LedgerReport:
    accounts_checked: int = 0
    lots_checked: int = 0
    debits_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_ledger(*, member_ids: list[int] | None = None) -> LedgerReport:
    """Prove the cached figures agree with the append-only entries.

    For every (member, metric): balance == sum of entries == sum of lot remainders.
    For every lot: remaining == amount - its consumptions, and amount == its credit entry.
    For every debit: -amount == the points it took from lots.
    """
    report = LedgerReport()
    entries = LedgerEntry.objects.all()
    balances = PointBalance.objects.all()
    lots = PointLot.objects.all()
    if member_ids is not None:
        entries = entries.filter(member_id__in=member_ids)
        balances = balances.filter(member_id__in=member_ids)
        lots = lots.filter(member_id__in=member_ids)

    entry_sums = {
        (r["member_id"], r["metric_id"]): r["total"]
        for r in entries.values("member_id", "metric_id").annotate(total=Sum("amount")).order_by()
    }
    lot_sums = {
        (r["member_id"], r["metric_id"]): r["total"]
        for r in lots.values("member_id", "metric_id").annotate(total=Sum("remaining")).order_by()
    }
    cached = {(b.member_id, b.metric_id): b for b in balances}
    for key in sorted(set(entry_sums) | set(lot_sums) | set(cached)):
        report.accounts_checked += 1
        b = cached.get(key)
        cached_balance = b.balance if b else 0
        total = entry_sums.get(key, 0) or 0
        lot_total = lot_sums.get(key, 0) or 0
        if cached_balance != total:
            report.problems.append(
                f"member {key[0]} metric {key[1]}: cached balance {cached_balance} != sum of entries {total}"
            )
        if cached_balance != lot_total:
            report.problems.append(
                f"member {key[0]} metric {key[1]}: cached balance {cached_balance} != lot remainders {lot_total}"
            )

    consumed = {
        r["lot_id"]: r["total"]
        for r in LotConsumption.objects.filter(lot__in=lots).values("lot_id").annotate(total=Sum("amount")).order_by()
    }
    for lot in lots.select_related("entry").iterator(chunk_size=2000):
        report.lots_checked += 1
        if lot.amount != lot.entry.amount:
            report.problems.append(f"lot {lot.pk}: amount {lot.amount} != its entry's {lot.entry.amount}")
        expected = lot.amount - consumed.get(lot.pk, 0)
        if lot.remaining != expected:
            report.problems.append(f"lot {lot.pk}: remaining {lot.remaining} != amount - consumptions {expected}")

    taken = {
        r["debit_id"]: r["total"]
        for r in LotConsumption.objects.filter(debit__in=entries).values("debit_id").annotate(total=Sum("amount")).order_by()
    }
    for entry_id, amount in entries.filter(amount__lt=0).values_list("id", "amount").iterator(chunk_size=2000):
        report.debits_checked += 1
        if -amount != taken.get(entry_id, 0):
            report.problems.append(f"entry {entry_id}: debit {amount} took {taken.get(entry_id, 0)} from lots")
    return report
