"""Reusable reads of the loyalty core."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import Reverse
from django.db.models.lookups import StartsWith
from django.utils import timezone

from .earning import RuleData, RuleSetData
from .models import LedgerEntry, LotConsumption, Member, PointBalance, PointLot, RuleSet, Tier, TierMembership


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
        rows.append(
            {
                "metric": balance.metric.code,
                "metric_name": balance.metric.name,
                "balance": balance.balance,
                "pending": balance.pending,
                "debt": balance.debt,
                "expiring": [{"expires_at": e["expires_at"], "amount": e["amount"]} for e in expiring],
            }
        )
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

    Per (member, metric): balance + pending - debt == sum of entries; balance == remainders of
    spendable lots; pending == remainders of pending lots; debt == what debits could not take from lots.
    Per lot: amount == its credit entry and remaining == amount - its consumptions.
    Per debit: it never took more from lots than it debited.
    """
    report = LedgerReport()
    entries = LedgerEntry.objects.all()
    balances = PointBalance.objects.all()
    lots = PointLot.objects.all()
    if member_ids is not None:
        entries = entries.filter(member_id__in=member_ids)
        balances = balances.filter(member_id__in=member_ids)
        lots = lots.filter(member_id__in=member_ids)

    def sums(qs, value, **extra) -> dict:
        return {
            (r["member_id"], r["metric_id"]): r["total"] or 0
            for r in qs.filter(**extra).values("member_id", "metric_id").annotate(total=Sum(value)).order_by()
        }

    entry_sums = sums(entries, "amount")
    debit_sums = sums(entries, "amount", amount__lt=0)
    spendable = sums(lots, "remaining", pending=False)
    pending = sums(lots, "remaining", pending=True)
    taken_by_account = {
        (r["debit__member_id"], r["debit__metric_id"]): r["total"]
        for r in LotConsumption.objects.filter(debit__in=entries)
        .values("debit__member_id", "debit__metric_id")
        .annotate(total=Sum("amount"))
        .order_by()
    }
    cached = {(b.member_id, b.metric_id): b for b in balances}
    for key in sorted(set(entry_sums) | set(spendable) | set(pending) | set(cached)):
        report.accounts_checked += 1
        b = cached.get(key) or PointBalance(balance=0, pending=0, debt=0)
        where = f"member {key[0]} metric {key[1]}"
        total = entry_sums.get(key, 0)
        if b.balance + b.pending - b.debt != total:
            report.problems.append(
                f"{where}: cached balance {b.balance} + pending {b.pending} - debt {b.debt} != sum of entries {total}"
            )
        if b.balance != spendable.get(key, 0):
            report.problems.append(f"{where}: cached balance {b.balance} != lot remainders {spendable.get(key, 0)}")
        if b.pending != pending.get(key, 0):
            report.problems.append(f"{where}: cached pending {b.pending} != pending lots {pending.get(key, 0)}")
        uncovered = -debit_sums.get(key, 0) - taken_by_account.get(key, 0)
        if b.debt != uncovered:
            report.problems.append(f"{where}: cached debt {b.debt} != debits not covered by lots {uncovered}")

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
        for r in LotConsumption.objects.filter(debit__in=entries)
        .values("debit_id")
        .annotate(total=Sum("amount"))
        .order_by()
    }
    for entry_id, kind, amount in (
        entries.filter(amount__lt=0).values_list("id", "kind", "amount").iterator(chunk_size=2000)
    ):
        report.debits_checked += 1
        took = taken.get(entry_id, 0)
        # Only purchase returns may leave debt; every other debit is covered by lots in full.
        if took > -amount or (kind != LedgerEntry.Kind.RETURN and took != -amount):
            report.problems.append(f"entry {entry_id}: debit {amount} took {took} from lots")
    return report


def rule_set_at(when: dt.datetime) -> RuleSet | None:
    """The rule set in force at a moment (published or since retired: history never changes)."""
    return (
        RuleSet.objects.filter(status__in=[RuleSet.Status.PUBLISHED, RuleSet.Status.RETIRED], valid_from__lte=when)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=when))
        .order_by("-valid_from")
        .first()
    )


def rule_set_data(rule_set: RuleSet) -> RuleSetData:
    """Plain data for the earning engine."""
    rules = tuple(
        RuleData(
            id=r.pk,
            name=r.name,
            metric=r.metric.code,
            action=r.action,
            points=r.points,
            unit_amount=r.unit_amount,
            percent_by_tier=dict(r.percent_by_tier or {}),
            min_amount=r.min_amount,
            channels=tuple(r.channels or ()),
            stores=tuple(r.stores or ()),
            tiers=tuple(r.tiers or ()),
        )
        for r in rule_set.rules.select_related("metric").order_by("position", "id")
    )
    return RuleSetData(id=rule_set.pk, name=rule_set.name, version=rule_set.version, rules=rules)


# --- finding people -----------------------------------------------------------------------------

_PHONE_LIKE = re.compile(r"^[\d\s+().-]+$")
MIN_CONTAINS = 3  # shorter terms cannot use the trigram indexes: prefix and exact matches only


def member_search_q(term: str) -> Q | None:
    """Who a support agent means by ``term``: part of the name or email, the phone's digits (all
    of them or the last ones), the customer id in any case (whole, or its start). On PostgreSQL
    each ``icontains`` is served by a pg_trgm GIN index on ``UPPER(column)`` (migration 0013), the
    id by a btree on ``UPPER(external_id)`` (0016) and the phone by a btree on ``REVERSE(phone)``
    (0019: its end is a prefix of the reversed number), so this stays fast at a million members;
    SQLite scans.

    Only the columns the term can be in are searched (every extra column is one more index scan):
    a term with a space is not an email or an id, one with "@" is not a name, a phone number is
    neither a name nor an email.
    """
    term = " ".join((term or "").split())
    if not term:
        return None
    if len(term) < MIN_CONTAINS:
        return Q(external_id__iexact=term) | Q(name__istartswith=term)
    phone_like = bool(_PHONE_LIKE.match(term))
    q = Q()
    if "@" not in term and not phone_like:
        q |= Q(name__icontains=term)
    if " " not in term:
        q |= Q(external_id__istartswith=term)
        if not phone_like:
            q |= Q(email__icontains=term)
    if phone_like:
        digits = re.sub(r"\D", "", term)
        if len(digits) >= MIN_CONTAINS:
            q |= Q(StartsWith(Reverse("phone"), digits[::-1]))
    return q if q else Q(pk__in=[])


def search_members(queryset: QuerySet[Member], term: str) -> QuerySet[Member]:
    q = member_search_q(term)
    return queryset if q is None else queryset.filter(q)
