"""Demo data beyond the loyalty core: a tiny registry of seeding steps, and loyalty's own steps.

``manage.py seed_demo`` creates users, metrics, tiers, members, segments and rewards itself, then
imports every installed app's ``demo`` module (``autodiscover_modules("demo")``) and runs the steps
they registered, in order. loyalty knows nothing about the other apps: each app seeds its own
screens, through its own services, from its own ``demo.py``.

A step is ``fn(*, stdout, rng, users)``: ``stdout`` the command's output, ``rng`` a
``random.Random`` seeded from the demo seed and the step's name (so a step draws the same numbers
whatever other steps did), ``users`` the demo users by role name (support, approver, campaigns,
auditor, integration, admin). Every step must be idempotent: it checks a marker (a named campaign,
rule set, reference...) and does nothing when its data is already there.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone

from loyalty.kernel.registry import Registry

SEED = 42
DemoStepFn = Callable[..., None]


@dataclass(frozen=True)
class DemoStep:
    order: int
    name: str
    fn: DemoStepFn


STEPS: Registry[DemoStep] = Registry(key="name", discover="demo")
demo_steps = STEPS.entries  # every app's steps, in the order they run


def register_demo_step(order: int, name: str, fn: DemoStepFn) -> DemoStepFn:
    """Register (or replace, by name) a seeding step; steps run by ascending ``order``."""
    STEPS.register(DemoStep(order=order, name=name, fn=fn))
    return fn


def step_rng(name: str, seed: int = SEED) -> random.Random:
    """The generator a step gets: fixed by the seed and the step's name only."""
    return random.Random(f"{seed}:{name}")


def run_demo_steps(*, stdout: Any, users: dict[str, Any], seed: int = SEED) -> list[str]:
    """Run every registered step (the caller holds the transaction). Returns the names run."""
    names = []
    for step in demo_steps():
        step.fn(stdout=stdout, rng=step_rng(step.name, seed), users=users)
        names.append(step.name)
    return names


def local_midnight(at: dt.datetime | None = None) -> dt.datetime:
    """Today's local midnight: demo timestamps hang off it, so two runs on one day agree."""
    return timezone.localtime(at or timezone.now()).replace(hour=0, minute=0, second=0, microsecond=0)


def say(stdout: Any, name: str, text: str) -> None:
    stdout.write(f"  {name}: {text}")


# --- loyalty: rule sets ------------------------------------------------------------------------

RULE_SET_NAME = "Base earning"


def _rules(*, gold: int, silver: int, bronze: int, web_bonus: bool) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {"name": "1 point per 1.00 spent", "metric": "points", "action": "per_amount", "points": 1, "unit_amount": "1"},
        {
            "name": "Tier bonus",
            "metric": "points",
            "action": "percent_of_amount",
            "percent_by_tier": {"BRONZE": bronze, "SILVER": silver, "GOLD": gold},
        },
        {
            "name": "Status credits: 1 per 10.00",
            "metric": "status_credits",
            "action": "per_amount",
            "points": 1,
            "unit_amount": "10",
        },
    ]
    if web_bonus:
        rules.append(
            {
                "name": "Online orders from 50.00: +25 points",
                "metric": "points",
                "action": "fixed",
                "points": 25,
                "channels": ["web", "app"],
                "min_amount": "50",
            }
        )
    return rules


def seed_rule_sets(*, stdout, rng, users) -> None:
    """Base earning v1 (a year ago until four months ago), v2 (since then) and a v3 draft."""
    from . import services
    from .models import RuleSet

    if RuleSet.objects.filter(name=RULE_SET_NAME).exists():
        say(stdout, "rule sets", "already seeded")
        return
    actor = users["campaigns"]
    midnight = local_midnight()
    switch = midnight - dt.timedelta(days=120)
    v1 = services.create_rule_set(
        name=RULE_SET_NAME,
        description="Points per euro, a tier bonus and status credits.",
        valid_from=midnight - dt.timedelta(days=365),
        valid_to=switch,
        rules=_rules(bronze=2, silver=5, gold=10, web_bonus=False),
        actor=actor,
    )

    def revise(previous: RuleSet, valid_from: dt.datetime, description: str, **rates: Any) -> RuleSet:
        """A draft version of ``previous`` from ``valid_from`` with these rates."""
        draft = services.new_rule_set_version(rule_set=previous, actor=actor, valid_from=valid_from)
        services.update_rule_set(rule_set=draft, actor=actor, description=description, rules=_rules(**rates))
        return draft

    services.publish_rule_set(rule_set=v1, actor=actor)
    online = "v1 plus a bonus for online orders; Gold bonus raised to 12%."
    v2 = revise(v1, switch, online, bronze=2, silver=5, gold=12, web_bonus=True)
    services.publish_rule_set(rule_set=v2, actor=actor)
    # The next version, prepared but not published: it starts on the first of next month.
    first_next = (midnight.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    v3 = revise(v2, first_next, "Draft: Silver bonus to 6%, Gold to 15%.", bronze=2, silver=6, gold=15, web_bonus=True)
    say(stdout, "rule sets", f"{v1} and {v2} published, {v3} draft")


# --- loyalty: purchases and returns -------------------------------------------------------------

PURCHASE_PREFIX = "DEMO-POS-"
NON_LOYALTY_PREFIX = "DEMO-NL-"
MAX_PURCHASES = 200
NON_LOYALTY_PURCHASES = 8
STORE_CHANNELS = [  # store, channel
    ("Downtown store", "pos"),
    ("Airport store", "pos"),
    ("Mall store", "pos"),
    ("Web shop", "web"),
    ("Mobile app", "app"),
]


def _amount(rng: random.Random) -> Decimal:
    # Mostly everyday baskets, now and then a big one.
    euros = rng.choice([rng.randint(8, 90), rng.randint(8, 90), rng.randint(60, 250), rng.randint(200, 900)])
    return Decimal(euros) + Decimal(rng.choice([0, 0, 49, 90, 99])) / 100


def seed_purchases(*, stdout, rng, users) -> None:
    """~200 loyalty purchases at past dates (earning by the rules then), returns, and bills without a card."""
    from . import services
    from .models import Member, ProgramSettings, Transaction

    if Transaction.objects.filter(external_id__startswith="DEMO-").exists():
        say(stdout, "purchases", "already seeded")
        return
    currency = ProgramSettings.load().currency
    midnight = local_midnight()
    members = list(
        Member.objects.filter(external_id__startswith="DEMO-", status=Member.Status.ACTIVE).order_by("external_id")
    )
    # How far back a member's purchases go: after enrolment, within the rule sets' history. Every
    # purchase draws the same numbers whatever that span is, so the sequence never shifts.
    days_back = {m.pk: min(330, max((midnight - m.enrolled_at).days - 1, 1)) for m in members}
    count = min(MAX_PURCHASES, 2 * len(members))
    purchases = []
    for _ in range(count):
        member = rng.choice(members)
        share, hour, minute = rng.random(), rng.randint(8, 20), rng.randint(0, 59)
        days = 1 + int(share * days_back[member.pk])
        occurred_at = midnight - dt.timedelta(days=days) + dt.timedelta(hours=hour, minutes=minute)
        store, channel = rng.choice(STORE_CHANNELS)
        purchases.append(
            dict(occurred_at=occurred_at, member=member, store=store, channel=channel, amount=_amount(rng))
        )
    # Recorded oldest first, as a POS would have sent them (they earn by the rules of their date).
    purchases.sort(key=lambda p: (p["occurred_at"], p["member"].external_id))
    recorded = [
        services.record_transaction(
            external_id=f"{PURCHASE_PREFIX}{n:05d}", currency=currency, actor=users["integration"], **purchase
        )
        for n, purchase in enumerate(purchases, start=1)
    ]
    returns = 0
    for txn in rng.sample(recorded, k=min(len(recorded), max(1, count // 16))) if recorded else []:
        partial = rng.random() < 0.4 and txn.amount >= 20
        services.return_transaction(
            transaction_=txn,
            amount=(txn.amount / 2).quantize(Decimal("0.01")) if partial else None,
            reason="Partial return: one item" if partial else "Returned in store",
            actor=users["support"],
        )
        returns += 1
    # Bills without a loyalty card: retro claims pick them up later.
    for n in range(1, NON_LOYALTY_PURCHASES + 1):
        store, channel = rng.choice(STORE_CHANNELS[:3])
        services.record_transaction(
            external_id=f"{NON_LOYALTY_PREFIX}{n:05d}",
            occurred_at=midnight - dt.timedelta(days=rng.randint(2, 60)) + dt.timedelta(hours=rng.randint(9, 19)),
            amount=_amount(rng),
            currency=currency,
            channel=channel,
            store=store,
            member=None,
            actor=users["integration"],
        )
    say(
        stdout,
        "purchases",
        f"{len(recorded)} loyalty purchases, {returns} returns, {NON_LOYALTY_PURCHASES} bills without a card",
    )


register_demo_step(10, "rule sets", seed_rule_sets)
register_demo_step(20, "purchases", seed_purchases)
