"""Rule sets, purchases, returns, trackers and tier qualification."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.db.models.functions import Greatest
from django.utils import timezone

from ..earning import PurchaseData, compute_earning, share_of_points
from ..exceptions import AlreadyExists, BusinessRuleViolation, Conflict, InvalidInput, MemberInactive
from ..models import (
    LedgerEntry,
    Member,
    MemberTracker,
    Metric,
    ProgramSettings,
    Rule,
    RuleSet,
    Tier,
    TierMembership,
    Transaction,
    TransactionReturn,
)
from ..selectors import rule_set_at, rule_set_data, tier_at
from ..workflow import check_transition, save_with_history
from .core import User, _require_perm, _user_or_none, change_tier, credit_points, lock_balances, reverse_earning

# A POS clock may run a little ahead; anything further in the future is a mistake.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
MAX_AMOUNT = Decimal("9999999999.99")


# --- rule sets -------------------------------------------------------------------------------

RULE_FIELDS = {"name", "metric", "action", "points", "unit_amount", "percent_by_tier", "conditions", "position"}


def _clean_rule(data: dict[str, Any], index: int) -> dict[str, Any]:
    """Validate one rule given as plain data (API or admin) and return model field values."""
    errors: dict[str, list[str]] = {}
    unknown = set(data) - RULE_FIELDS - {"id", "min_amount", "channels", "stores", "tiers"}
    if unknown:
        errors["rules"] = [f"Rule {index}: unknown fields {sorted(unknown)}."]
    name = str(data.get("name") or "").strip()
    if not name:
        errors.setdefault("name", []).append("Every rule needs a name.")
    metric = data.get("metric")
    if not isinstance(metric, Metric):
        metric = Metric.objects.filter(code=metric).first() if isinstance(metric, str) else None
        if metric is None:
            errors.setdefault("metric", []).append(f"Rule {index}: unknown metric {data.get('metric')!r}.")
    action = data.get("action")
    if action not in Rule.Action.values:
        errors.setdefault("action", []).append(f"Rule {index}: action must be one of {Rule.Action.values}.")
    conditions = dict(data.get("conditions") or {})
    for key in ("min_amount", "channels", "stores", "tiers"):
        if key in data:
            conditions[key] = data[key]
    values: dict[str, Any] = {
        "name": name,
        "metric": metric,
        "action": action,
        "position": int(data.get("position") or index),
    }

    def positive_int(key: str) -> int | None:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 1_000_000_000:
            errors.setdefault(key, []).append(f"Rule {index}: {key} must be a whole number above zero.")
            return None
        return value

    def decimal(value: Any, key: str) -> Decimal | None:
        try:
            result = Decimal(str(value))
        except (InvalidOperation, ValueError):
            errors.setdefault(key, []).append(f"Rule {index}: {key} must be a number.")
            return None
        if not result.is_finite() or result < 0 or result > MAX_AMOUNT:
            errors.setdefault(key, []).append(f"Rule {index}: {key} is out of range.")
            return None
        return result

    if action in ("fixed", "per_amount"):
        values["points"] = positive_int("points")
    if action == "per_amount":
        unit = decimal(data.get("unit_amount"), "unit_amount")
        if unit is not None and unit <= 0:
            errors.setdefault("unit_amount", []).append(f"Rule {index}: unit_amount must be above zero.")
        values["unit_amount"] = unit
    if action == "percent_of_amount":
        by_tier = data.get("percent_by_tier")
        if not isinstance(by_tier, dict) or not by_tier:
            errors.setdefault("percent_by_tier", []).append(f"Rule {index}: give a percent per tier code.")
        else:
            known = set(Tier.objects.values_list("code", flat=True))
            clean = {}
            for code, pct in by_tier.items():
                value = decimal(pct, "percent_by_tier")
                if code not in known:
                    errors.setdefault("percent_by_tier", []).append(f"Rule {index}: unknown tier {code!r}.")
                elif value is not None and value > 1000:
                    errors.setdefault("percent_by_tier", []).append(f"Rule {index}: {pct}% is not plausible.")
                elif value is not None:
                    clean[code] = float(value) if value != value.to_integral_value() else int(value)
            values["percent_by_tier"] = clean
    if conditions.get("min_amount") not in (None, ""):
        values["min_amount"] = decimal(conditions["min_amount"], "min_amount")
    for key in ("channels", "stores", "tiers"):
        items = conditions.get(key) or []
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            errors.setdefault(key, []).append(f"Rule {index}: {key} must be a list of strings.")
        values[key] = list(items) if isinstance(items, list) else []
    if errors:
        raise InvalidInput("A rule is invalid.", errors=errors)
    return values


def _clean_window(valid_from: dt.datetime | None, valid_to: dt.datetime | None) -> None:
    if valid_from is None:
        raise InvalidInput("valid_from is required.", errors={"valid_from": ["This field is required."]})
    if valid_to is not None and valid_to <= valid_from:
        raise InvalidInput("valid_to must be after valid_from.", errors={"valid_to": ["Must be after valid_from."]})


def _write_rules(rule_set: RuleSet, rules: list[dict[str, Any]]) -> None:
    cleaned = [_clean_rule(r, i) for i, r in enumerate(rules)]
    rule_set.rules.all().delete()
    for values in cleaned:
        Rule.objects.create(rule_set=rule_set, **values)


@transaction.atomic
def create_rule_set(
    *,
    name: str,
    valid_from: dt.datetime,
    valid_to: dt.datetime | None = None,
    description: str = "",
    rules: list[dict[str, Any]] | None = None,
    actor: User,
    previous: RuleSet | None = None,
) -> RuleSet:
    """A new draft; its version follows the highest existing version of the same name."""
    _require_perm(actor, "loyalty.add_ruleset")
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A name is required.", errors={"name": ["This field is required."]})
    _clean_window(valid_from, valid_to)
    last = RuleSet.objects.filter(name=name).order_by("-version").values_list("version", flat=True).first()
    rule_set = RuleSet(
        name=name,
        version=(last or 0) + 1,
        description=description,
        valid_from=valid_from,
        valid_to=valid_to,
        previous=previous,
        created_by=_user_or_none(actor),
    )
    save_with_history(rule_set, actor=actor, reason="Draft created")
    _write_rules(rule_set, rules or [])
    return rule_set


def _editable(rule_set: RuleSet) -> RuleSet:
    locked = RuleSet.objects.select_for_update().get(pk=rule_set.pk)
    if locked.status != RuleSet.Status.DRAFT:
        raise Conflict(f"{locked} is {locked.status}; create a new version to change it.", code="rule_set_published")
    return locked


@transaction.atomic
def update_rule_set(
    *, rule_set: RuleSet, actor: User, rules: list[dict[str, Any]] | None = None, **fields: Any
) -> RuleSet:
    """Edit a draft (name, description, window, rules). Published sets are immutable."""
    _require_perm(actor, "loyalty.change_ruleset")
    allowed = {"name", "description", "valid_from", "valid_to"}
    if set(fields) - allowed:
        raise InvalidInput(f"Cannot change {sorted(set(fields) - allowed)}.")
    rule_set = _editable(rule_set)
    for key, value in fields.items():
        setattr(rule_set, key, value)
    _clean_window(rule_set.valid_from, rule_set.valid_to)
    save_with_history(rule_set, actor=actor, reason="Draft edited")
    if rules is not None:
        _write_rules(rule_set, rules)
    return rule_set


@transaction.atomic
def new_rule_set_version(*, rule_set: RuleSet, actor: User, valid_from: dt.datetime | None = None) -> RuleSet:
    """Copy a rule set (usually a published one) into a new draft that starts ``valid_from`` (default now)."""
    source = RuleSet.objects.get(pk=rule_set.pk)
    start = valid_from or max(timezone.now(), source.valid_from)
    rules = [
        {
            "name": r.name,
            "metric": r.metric,
            "action": r.action,
            "points": r.points,
            "unit_amount": r.unit_amount,
            "percent_by_tier": r.percent_by_tier,
            "min_amount": r.min_amount,
            "channels": r.channels,
            "stores": r.stores,
            "tiers": r.tiers,
            "position": r.position,
        }
        for r in source.rules.select_related("metric")
    ]
    valid_to = source.valid_to if source.valid_to is None or source.valid_to > start else None
    return create_rule_set(
        name=source.name,
        description=source.description,
        valid_from=start,
        valid_to=valid_to,
        rules=rules,
        actor=actor,
        previous=source,
    )


def _overlapping(start: dt.datetime, end: dt.datetime | None, exclude: list[int]):
    qs = RuleSet.objects.filter(status__in=[RuleSet.Status.PUBLISHED, RuleSet.Status.RETIRED]).exclude(pk__in=exclude)
    qs = qs.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start)).exclude(valid_to=F("valid_from"))
    if end is not None:
        qs = qs.filter(valid_from__lt=end)
    return qs


@transaction.atomic
def publish_rule_set(*, rule_set: RuleSet, actor: User) -> RuleSet:
    """Make a draft effective for its window.

    Its predecessor's window is closed at the new ``valid_from``; no other published set may overlap
    (409 ``rule_set_overlap``), and nothing in force at any moment before now may change (422
    ``rule_set_rewrites_past``): a window may start in the past only where no set covered that time.
    """
    _require_perm(actor, "loyalty.publish_ruleset")
    ProgramSettings.load()
    ProgramSettings.objects.select_for_update().get(pk=1)  # one publication at a time
    draft = RuleSet.objects.select_for_update().get(pk=rule_set.pk)
    check_transition(RuleSet.STATUS_TRANSITIONS, draft.status, RuleSet.Status.PUBLISHED, field="status")
    if not draft.rules.exists():
        raise InvalidInput("A rule set needs at least one rule.", errors={"rules": ["Add at least one rule."]})
    now = timezone.now()
    start, end = draft.valid_from, draft.valid_to
    predecessor = None
    if draft.previous_id:
        prev = RuleSet.objects.select_for_update().get(pk=draft.previous_id)
        if (
            prev.status == RuleSet.Status.PUBLISHED
            and prev.valid_from < start
            and (prev.valid_to is None or prev.valid_to > start)
        ):
            predecessor = prev
    if predecessor is not None and start < now:
        raise BusinessRuleViolation(
            f"Closing {predecessor} at {start:%Y-%m-%d %H:%M} would change rules already in force. "
            "Start the new version now or later.",
            code="rule_set_rewrites_past",
            errors={"valid_from": ["Must not be in the past when it replaces a published version."]},
        )
    clashes = list(_overlapping(start, end, exclude=[draft.pk] + ([predecessor.pk] if predecessor else [])))
    if predecessor is not None and end is not None and (predecessor.valid_to is None or predecessor.valid_to > end):
        clashes.append(predecessor)  # the old version would resume after the new one: ambiguous, refuse
    if clashes:
        names = ", ".join(
            f"{c} [{c.valid_from:%Y-%m-%d}, {c.valid_to:%Y-%m-%d})"
            if c.valid_to
            else f"{c} [{c.valid_from:%Y-%m-%d}, open)"
            for c in clashes
        )
        raise Conflict(
            f"The window overlaps published rule sets: {names}.",
            code="rule_set_overlap",
            errors={"valid_from": [f"Overlaps {names}."]},
        )
    if predecessor is not None:
        predecessor.valid_to = start
        predecessor._allow_lifecycle_change = True
        save_with_history(predecessor, actor=actor, reason=f"Closed by {draft}", update_fields=["valid_to"])
    draft.status = RuleSet.Status.PUBLISHED
    draft.published_at = now
    draft.published_by = _user_or_none(actor)
    draft._allow_lifecycle_change = True
    save_with_history(draft, actor=actor, reason="Published", update_fields=["status", "published_at", "published_by"])
    return draft


@transaction.atomic
def retire_rule_set(*, rule_set: RuleSet, actor: User, reason: str) -> RuleSet:
    """Stop a published set from now on; its past stays on record for retro processing."""
    _require_perm(actor, "loyalty.publish_ruleset")
    locked = RuleSet.objects.select_for_update().get(pk=rule_set.pk)
    check_transition(RuleSet.STATUS_TRANSITIONS, locked.status, RuleSet.Status.RETIRED, field="status")
    now = timezone.now()
    if locked.valid_to is None or locked.valid_to > now:
        locked.valid_to = max(now, locked.valid_from)
    locked.status = RuleSet.Status.RETIRED
    locked._allow_lifecycle_change = True
    save_with_history(locked, actor=actor, reason=reason or "Retired", update_fields=["status", "valid_to"])
    return locked


# --- purchases -------------------------------------------------------------------------------


def _clean_amount(amount: Any, field: str = "amount") -> Decimal:
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError, TypeError):
        raise InvalidInput("The amount must be a number.", errors={field: ["Must be a decimal number."]}) from None
    if isinstance(amount, bool) or not value.is_finite():
        raise InvalidInput("The amount must be a number.", errors={field: ["Must be a decimal number."]})
    if value <= 0:
        raise InvalidInput("The amount must be positive.", errors={field: ["Must be greater than zero."]})
    if value > MAX_AMOUNT:
        raise InvalidInput("The amount is not plausible.", errors={field: [f"Must be at most {MAX_AMOUNT}."]})
    if value != value.quantize(Decimal("0.01")):
        raise InvalidInput("At most two decimal places.", errors={field: ["At most two decimal places."]})
    return value.quantize(Decimal("0.01"))


def preview_earning(
    *,
    amount: Decimal,
    occurred_at: dt.datetime,
    member: Member | None = None,
    tier: Tier | None = None,
    channel: str = "",
    store: str = "",
) -> dict[str, Any]:
    """The breakdown a purchase would earn, without writing anything (admin preview, retro preview)."""
    tier_code = tier.code if tier else None
    if tier is None and member is not None:
        at = tier_at(member, occurred_at)
        tier_code = at.code if at else None
    rule_set = rule_set_at(occurred_at)
    purchase = PurchaseData(amount=_clean_amount(amount), occurred_at=occurred_at, channel=channel, store=store)
    return compute_earning(purchase, tier_code, rule_set_data(rule_set) if rule_set else None)


def _check_member_can_earn(member: Member) -> None:
    if member.status != Member.Status.ACTIVE:
        raise MemberInactive(f"Member {member.external_id} is {member.status} and cannot earn points.")


@transaction.atomic
def record_transaction(
    *,
    external_id: str,
    occurred_at: dt.datetime,
    amount: Any,
    currency: str,
    channel: str = "",
    store: str = "",
    member: Member | None = None,
    actor: User = None,
) -> Transaction:
    """Store a purchase; with a member it earns at once by the rules and tier at ``occurred_at``."""
    _require_perm(actor, "loyalty.add_transaction")
    external_id = (external_id or "").strip()
    errors: dict[str, list[str]] = {}
    if not external_id:
        errors["external_id"] = ["This field is required."]
    value = _clean_amount(amount)
    program = ProgramSettings.load()
    if (currency or "").upper() != program.currency:
        errors["currency"] = [f"Unknown currency {currency!r}; this program counts in {program.currency}."]
    if occurred_at is None or timezone.is_naive(occurred_at):
        errors["occurred_at"] = ["A timestamp with a time zone offset is required."]
    elif occurred_at > timezone.now() + FUTURE_TOLERANCE:
        errors["occurred_at"] = ["Must not be in the future."]
    if errors:
        raise InvalidInput("The purchase is invalid.", errors=errors)
    if member is not None:
        _check_member_can_earn(member)
    if Transaction.objects.filter(external_id=external_id).exists():
        raise AlreadyExists(f"Bill {external_id!r} is already recorded.", errors={"external_id": ["Already recorded."]})
    txn = Transaction(
        external_id=external_id,
        occurred_at=occurred_at,
        amount=value,
        currency=program.currency,
        channel=(channel or "").strip(),
        store=(store or "").strip(),
        created_by=_user_or_none(actor),
    )
    try:
        with transaction.atomic():
            save_with_history(txn, actor=actor, reason="Recorded")
    except IntegrityError as exc:
        raise AlreadyExists(
            f"Bill {external_id!r} is already recorded.", errors={"external_id": ["Already recorded."]}
        ) from exc
    if member is not None:
        earn_for_transaction(transaction_=txn, member=member, actor=actor, kind=LedgerEntry.Kind.EARN)
    return txn


def earn_for_transaction(
    *,
    transaction_: Transaction,
    member: Member,
    actor: User,
    kind: str = LedgerEntry.Kind.EARN,
    reason: str = "Purchase",
    idempotency_prefix: str | None = None,
) -> dict[str, Any]:
    """Credit what a purchase earns (point-in-time rules and tier), then count it in the trackers of
    the current period, which may raise the member's tier from now on. Idempotent per transaction
    (or per ``idempotency_prefix``, e.g. a retro claim).

    It earns on what the customer kept: a bill returned in part before it earned (a retro claim
    processed after a return) earns on the rest, and the trackers count the rest; a bill returned
    in full earns nothing (409 ``already_returned``). Caller holds the transaction's row lock.
    """
    prefix = idempotency_prefix or f"txn:{transaction_.pk}"
    _check_member_can_earn(member)
    kept = kept_amount(transaction_)
    if kept <= 0:
        raise Conflict(f"Bill {transaction_.external_id} was returned in full.", code="already_returned")
    breakdown = preview_earning(
        amount=kept,
        occurred_at=transaction_.occurred_at,
        member=member,
        channel=transaction_.channel,
        store=transaction_.store,
    )
    if kept != transaction_.amount:
        breakdown["bill_amount"] = str(transaction_.amount)
        breakdown["returned_before_earning"] = str(transaction_.returned_amount)
    metrics = {m.code: m for m in Metric.objects.filter(code__in=breakdown["points_by_metric"])}
    lock_balances(member, metrics.values())
    for code, points in sorted(breakdown["points_by_metric"].items()):
        credit_points(
            member=member,
            metric=metrics[code],
            amount=points,
            kind=kind,
            actor=actor,
            reason=reason,
            effective_at=transaction_.occurred_at,
            purchase_at=transaction_.occurred_at,
            source_type="transaction",
            source_id=transaction_.external_id,
            breakdown=breakdown,
            idempotency_key=f"{prefix}:{code}",
        )
    transaction_.member = member
    transaction_.points_earned = breakdown["points"]
    transaction_.breakdown = breakdown
    transaction_.processed_at = timezone.now()
    save_with_history(
        transaction_, actor=actor, reason=reason, update_fields=["member", "points_earned", "breakdown", "processed_at"]
    )
    track_purchase(member=member, spend=kept, purchases=1, actor=actor)
    return breakdown


def kept_amount(transaction_: Transaction) -> Decimal:
    """What the customer kept of a bill: its amount less everything returned."""
    return transaction_.amount - transaction_.returned_amount


def _earned_on(entry: LedgerEntry, txn: Transaction) -> Decimal:
    """The amount an earning entry was computed on (its breakdown's ``amount``; the bill for old rows)."""
    try:
        return Decimal(str(entry.breakdown.get("amount") or txn.amount))
    except (InvalidOperation, AttributeError):
        return txn.amount


@transaction.atomic
def return_transaction(
    *, transaction_: Transaction, amount: Any = None, reason: str = "", actor: User = None
) -> TransactionReturn:
    """Reverse, proportionally and by the original rules, the points a purchase earned.

    Pending points are cancelled first; points already spent become debt. Cumulative rounding
    makes a full return take back exactly what was earned, across any number of partial returns.
    """
    _require_perm(actor, "loyalty.add_transactionreturn")

    def earnings():
        return list(
            LedgerEntry.objects.filter(source_type="transaction", source_id=transaction_.external_id, amount__gt=0)
            .select_related("metric", "member")
            .order_by("id")
        )

    earned = earnings()
    if earned:
        lock_balances(earned[0].member, [e.metric for e in earned])
    txn = Transaction.objects.select_for_update().get(pk=transaction_.pk)
    again = earnings()  # a retro claim may have been processed before we had the bill's lock
    if [e.pk for e in again] != [e.pk for e in earned]:
        earned = again
        lock_balances(earned[0].member, [e.metric for e in earned])
    left = txn.amount - txn.returned_amount
    if left <= 0:
        raise Conflict(f"Bill {txn.external_id} is already fully returned.", code="already_returned")
    value = left if amount in (None, "") else _clean_amount(amount)
    if value > left:
        raise Conflict(
            f"Only {left} of bill {txn.external_id} can still be returned.",
            code="return_exceeds_amount",
            errors={"amount": [f"At most {left}."]},
        )
    ret = TransactionReturn(transaction=txn, amount=value, reason=reason, created_by=_user_or_none(actor))
    save_with_history(ret, actor=actor, reason=reason or "Return")
    returned_total = txn.returned_amount + value
    reversed_points = debt = 0
    for entry in earned:
        already = -(
            LedgerEntry.objects.filter(reverses=entry, kind=LedgerEntry.Kind.RETURN).aggregate(total=Sum("amount"))[
                "total"
            ]
            or 0
        )
        # Shares of what the entry was earned on: a bill that earned after a first return (retro)
        # earned on the rest, and only returns after that take its points back.
        base = _earned_on(entry, txn)
        returned_since = max(returned_total - (txn.amount - base), Decimal(0))
        take = share_of_points(entry.amount, base, returned_since) - already
        if take > 0:
            _, owed = reverse_earning(
                entry=entry,
                amount=take,
                actor=actor,
                reason=reason or "Purchase return",
                source_type="return",
                source_id=str(ret.pk),
                idempotency_key=f"return:{ret.pk}:{entry.pk}",
            )
            reversed_points += take
            debt += owed
    ret.points_reversed, ret.debt_created = reversed_points, debt
    ret.save(update_fields=["points_reversed", "debt_created"])
    txn.returned_amount = returned_total
    save_with_history(txn, actor=actor, reason=reason or "Return", update_fields=["returned_amount"])
    if txn.member_id and txn.processed_at:
        track_purchase(
            member=txn.member,
            spend=-value,
            purchases=-1 if returned_total >= txn.amount else 0,
            actor=actor,
            evaluate=False,
        )
    return ret


# --- trackers and tiers ----------------------------------------------------------------------


def period_bounds(at: dt.datetime, months: int | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The qualification period containing ``at``, in the program's local time zone."""
    months = months or ProgramSettings.load().qualification_period_months
    local = at.astimezone(ZoneInfo(settings.TIME_ZONE))
    first_month = ((local.month - 1) // months) * months + 1
    start = local.replace(month=first_month, day=1, hour=0, minute=0, second=0, microsecond=0)
    end_month = first_month + months
    end = start.replace(year=start.year + (end_month - 1) // 12, month=(end_month - 1) % 12 + 1)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def track_purchase(
    *, member: Member, spend: Decimal, purchases: int, actor: User, evaluate: bool = True
) -> MemberTracker:
    """Count a purchase (or a return) in the tracker of the period **now** (processing time)."""
    start, end = period_bounds(timezone.now())
    tracker, _ = MemberTracker.objects.get_or_create(member=member, period_start=start, defaults={"period_end": end})
    MemberTracker.objects.filter(pk=tracker.pk).update(
        spend=Greatest(F("spend") + spend, Decimal(0)), purchases=Greatest(F("purchases") + purchases, 0)
    )
    tracker.refresh_from_db()
    if evaluate:
        upgrade_if_qualified(member=member, tracker=tracker, actor=actor)
    return tracker


def qualified_tier(spend: Decimal, purchases: int) -> Tier | None:
    """The best tier whose thresholds (every non-zero one) are met."""
    best = None
    for tier in Tier.objects.order_by("rank"):
        if spend >= tier.spend_threshold and purchases >= tier.purchase_threshold:
            best = tier
    return best


def upgrade_if_qualified(*, member: Member, tracker: MemberTracker, actor: User) -> TierMembership | None:
    target = qualified_tier(tracker.spend, tracker.purchases)
    member.refresh_from_db(fields=["tier"])
    current_rank = member.tier.rank if member.tier_id else -1
    if target is None or target.rank <= current_rank:
        return None
    return change_tier(
        member=member,
        tier=target,
        actor=actor,
        cause=TierMembership.Cause.QUALIFICATION,
        check_permission=False,
        reason=f"Qualified in the period from {tracker.period_start:%Y-%m-%d}: spend {tracker.spend}, "
        f"{tracker.purchases} purchases",
    )


def requalify_tiers(*, now: dt.datetime | None = None, batch_size: int = 500) -> int:
    """At period end, move members down to what they earned (previous or current period, whichever
    is better). Members whose tier was set during the current period keep it. Idempotent."""
    now = now or timezone.now()
    start, _ = period_bounds(now)
    prev_start, _ = period_bounds(start - dt.timedelta(seconds=1))
    lowest = Tier.objects.order_by("rank").first()
    if lowest is None:
        return 0
    moved = 0
    candidates = Member.objects.filter(tier__rank__gt=lowest.rank, status=Member.Status.ACTIVE).order_by("pk")
    last_pk = 0
    while True:
        batch = list(candidates.filter(pk__gt=last_pk).select_related("tier")[:batch_size])
        if not batch:
            return moved
        last_pk = batch[-1].pk
        trackers = {
            (t.member_id, t.period_start): t
            for t in MemberTracker.objects.filter(member__in=batch, period_start__in=[start, prev_start])
        }
        for member in batch:
            since = (
                TierMembership.objects.filter(member=member, valid_to__isnull=True)
                .values_list("valid_from", flat=True)
                .first()
            )
            if since is not None and since >= start:
                continue
            earned = [
                qualified_tier(t.spend, t.purchases)
                for t in (trackers.get((member.pk, prev_start)), trackers.get((member.pk, start)))
                if t
            ]
            keep = max([t for t in earned if t] + [lowest], key=lambda t: t.rank)
            if keep.rank < member.tier.rank:
                with transaction.atomic():
                    change_tier(
                        member=member,
                        tier=keep,
                        actor=None,
                        cause=TierMembership.Cause.REQUALIFICATION,
                        check_permission=False,
                        reason=f"Period ended {start:%Y-%m-%d}: qualified for {keep.code} only",
                    )
                moved += 1


# --- program settings ------------------------------------------------------------------------

PROGRAM_FIELDS = {f.name for f in ProgramSettings._meta.concrete_fields if f.name not in {"id", "updated_at"}}
ROLLBACK_REASONS = {"customer_request", "technical_error", "fraud", "other"}
PROCESSING_STATUSES = {"pending", "processing", "completed", "errored"}
FULFILLMENT_STATUSES = {"none", "confirmed_paid", "shipped", "delivered", "returned_to_sender", "lost_in_transit"}


@transaction.atomic
def update_program_settings(*, actor: User, reason: str = "Program settings changed", **fields: Any) -> ProgramSettings:
    """Change program-wide settings (retro, rollback policy, qualification period...) with history."""
    _require_perm(actor, "loyalty.change_programsettings")
    unknown = set(fields) - PROGRAM_FIELDS
    if unknown:
        raise InvalidInput(f"Unknown settings: {sorted(unknown)}.", errors={k: ["Unknown setting."] for k in unknown})
    errors: dict[str, list[str]] = {}
    for key, allowed in (
        ("rollback_approval_reasons", ROLLBACK_REASONS),
        ("rollback_statuses", PROCESSING_STATUSES),
        ("rollback_fulfillment_statuses", FULFILLMENT_STATUSES),
    ):
        if key in fields:
            value = fields[key]
            if not isinstance(value, list) or not all(isinstance(v, str) and v in allowed for v in value):
                errors[key] = [f"A list drawn from {sorted(allowed)}."]
    if "currency" in fields and not (
        isinstance(fields["currency"], str) and len(fields["currency"]) == 3 and fields["currency"].isalpha()
    ):
        errors["currency"] = ["A three-letter ISO 4217 code."]
    if errors:
        raise InvalidInput("The settings are invalid.", errors=errors)
    ProgramSettings.load()
    program = ProgramSettings.objects.select_for_update().get(pk=1)
    for key, value in fields.items():
        setattr(program, key, value.upper() if key == "currency" else value)
    save_with_history(program, actor=actor, reason=reason)
    return program
