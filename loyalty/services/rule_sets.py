"""Rule sets: drafts, versions, publishing and retiring."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from loyalty.exceptions import RULE_SET_OVERLAP, RULE_SET_PUBLISHED, RULE_SET_REWRITES_PAST
from loyalty.kernel import (
    Actor,
    history_user,
    in_transaction,
    is_whole_number,
    outer_service,
    require_perm,
    require_transition,
    save_with_history,
    transition,
)

from ..exceptions import BusinessRuleViolation, Conflict, InvalidInput
from ..models import (
    Metric,
    ProgramSettings,
    Rule,
    RuleSet,
    Tier,
)
from .earning import MAX_AMOUNT

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
        if not is_whole_number(value, 1, 1_000_000_000):
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


def create_rule_set_in_transaction(
    *,
    name: str,
    valid_from: dt.datetime,
    valid_to: dt.datetime | None = None,
    description: str = "",
    rules: list[dict[str, Any]] | None = None,
    actor: Actor,
    previous: RuleSet | None = None,
) -> RuleSet:
    """A new draft; its version follows the highest existing version of the same name.

    Building block: the caller holds the transaction (``create_rule_set`` is the outer service).
    """
    in_transaction()
    require_perm(actor, "loyalty.add_ruleset")
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
        created_by=history_user(actor),
    )
    save_with_history(rule_set, actor=actor, reason="Draft created")
    _write_rules(rule_set, rules or [])
    return rule_set


@outer_service
def create_rule_set(**kwargs: Any) -> RuleSet:
    """Outer service: runs ``create_rule_set_in_transaction`` (same arguments) in its own transaction."""
    return create_rule_set_in_transaction(**kwargs)


def _editable(rule_set: RuleSet) -> RuleSet:
    locked = RuleSet.objects.select_for_update().get(pk=rule_set.pk)
    if locked.status != RuleSet.Status.DRAFT:
        raise Conflict(f"{locked} is {locked.status}; create a new version to change it.", code=RULE_SET_PUBLISHED)
    return locked


@outer_service
def update_rule_set(
    *, rule_set: RuleSet, actor: Actor, rules: list[dict[str, Any]] | None = None, **fields: Any
) -> RuleSet:
    """Edit a draft (name, description, window, rules). Published sets are immutable."""
    require_perm(actor, "loyalty.change_ruleset")
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


@outer_service
def new_rule_set_version(*, rule_set: RuleSet, actor: Actor, valid_from: dt.datetime | None = None) -> RuleSet:
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
    return create_rule_set_in_transaction(
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


@outer_service
def publish_rule_set(*, rule_set: RuleSet, actor: Actor) -> RuleSet:
    """Make a draft effective for its window.

    Its predecessor's window is closed at the new ``valid_from``; no other published set may overlap
    (409 ``rule_set_overlap``), and nothing in force at any moment before now may change (422
    ``rule_set_rewrites_past``): a window may start in the past only where no set covered that time.
    """
    require_perm(actor, "loyalty.publish_ruleset")
    ProgramSettings.load()
    ProgramSettings.objects.select_for_update().get(pk=1)  # one publication at a time
    draft = RuleSet.objects.select_for_update().get(pk=rule_set.pk)
    require_transition(draft, "status", RuleSet.Status.PUBLISHED)
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
            code=RULE_SET_REWRITES_PAST,
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
            code=RULE_SET_OVERLAP,
            errors={"valid_from": [f"Overlaps {names}."]},
        )
    if predecessor is not None:
        predecessor.valid_to = start
        predecessor._allow_lifecycle_change = True
        save_with_history(predecessor, actor=actor, reason=f"Closed by {draft}", update_fields=["valid_to"])
    draft._allow_lifecycle_change = True
    transition(
        draft,
        "status",
        RuleSet.Status.PUBLISHED,
        actor=actor,
        reason="Published",
        changes={"published_at": now, "published_by": history_user(actor)},
    )
    return draft


@outer_service
def retire_rule_set(*, rule_set: RuleSet, actor: Actor, reason: str) -> RuleSet:
    """Stop a published set from now on; its past stays on record for retro processing."""
    require_perm(actor, "loyalty.publish_ruleset")
    locked = RuleSet.objects.select_for_update().get(pk=rule_set.pk)
    require_transition(locked, "status", RuleSet.Status.RETIRED)
    now = timezone.now()
    if locked.valid_to is None or locked.valid_to > now:
        locked.valid_to = max(now, locked.valid_from)
    locked._allow_lifecycle_change = True
    transition(locked, "status", RuleSet.Status.RETIRED, actor=actor, reason=reason or "Retired", also=["valid_to"])
    return locked
