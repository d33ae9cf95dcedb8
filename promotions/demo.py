"""Demo campaigns, codes, code uses and an anomaly (run by ``manage.py seed_demo``).

Three campaigns (a percentage, a fixed amount, bonus points; the percentage and the bonus stack
together), a generated batch of 500 codes and a small bonus batch, the public multi-use code
WELCOME10, validations, redemptions (some stacked), a rolled-back code use, two voided codes and a
streak of failed guesses that raises an anomaly. Everything goes through ``promotions.services``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache

from loyalty.demo import local_midnight, register_demo_step, say
from loyalty.models import Member, Metric

from . import abuse, services
from .models import AbuseSignal, Campaign, Code, CodeRedemption

WEEKEND = "Weekend 15% off"
WELCOME = "Welcome 10 € off"
BONUS = "250 bonus points"
WELCOME_CODE = "WELCOME10"
BATCH_SIZE = 500
POS_CLIENT, POS_IP = "integration", "198.51.100.10"
# A till that tries one code after another: the brute-force guard locks it out and raises an anomaly.
GUESSING_CLIENT, GUESSING_IP = "pos-terminal-17", "203.0.113.17"
CHANNELS = ["web", "app", "pos"]


def _reset_counters(member_ids: list[int]) -> None:
    """Forget earlier counters of the demo's clients and members (a previous run in this process or
    within the cache's window), so the anomaly is raised, and raised the same way, every time."""
    keys = []
    for kind in ("failed", "locked"):
        for subject_type, subject in (
            (AbuseSignal.Subject.CLIENT, POS_CLIENT),
            (AbuseSignal.Subject.IP, POS_IP),
            (AbuseSignal.Subject.CLIENT, GUESSING_CLIENT),
            (AbuseSignal.Subject.IP, GUESSING_IP),
        ):
            keys.append(abuse._key(kind, subject_type, subject))
    for member_id in member_ids:
        for kind in ("failed", "flagged-failures", "redeemed", "flagged"):
            keys.append(abuse._key(kind, AbuseSignal.Subject.MEMBER, str(member_id)))
    cache.delete_many(keys)


def seed_promotions(*, stdout, rng, users) -> None:
    if Campaign.objects.filter(name=WEEKEND).exists():
        say(stdout, "promotions", "already seeded")
        return
    manager, pos, support = users["campaigns"], users["integration"], users["support"]
    midnight = local_midnight()
    # The weekend discount and the bonus points code run together and stack in one order.
    stacking_together = dict(
        starts_at=midnight - dt.timedelta(days=21),
        ends_at=midnight + dt.timedelta(days=60),
        stacking=Campaign.Stacking.STACKABLE,
        stack_group="weekend",
        max_codes_per_order=2,
    )
    weekend = services.create_campaign(
        actor=manager,
        name=WEEKEND,
        description="15% off the basket on weekends; stacks with the bonus points code.",
        kind=Campaign.Kind.PERCENT_DISCOUNT,
        value=Decimal("15"),
        max_redemptions=2000,
        max_discount_total=Decimal("25000"),
        per_member_limit=2,
        code_pattern="WKND-####-????",
        **stacking_together,
    )
    welcome = services.create_campaign(
        actor=manager,
        name=WELCOME,
        description="10 € off a first order from 30 €; the public code WELCOME10.",
        kind=Campaign.Kind.FIXED_DISCOUNT,
        value=Decimal("10"),
        starts_at=midnight - dt.timedelta(days=90),
        min_order_amount=Decimal("30"),
        per_member_limit=1,
    )
    bonus = services.create_campaign(
        actor=manager,
        name=BONUS,
        description="250 bonus points with an order; stacks with the weekend discount.",
        kind=Campaign.Kind.BONUS_POINTS,
        value=Decimal("250"),
        metric=Metric.objects.get(code="points"),
        per_member_limit=1,
        code_pattern="BONUS-####-??",
        **stacking_together,
    )
    for campaign in (weekend, welcome, bonus):
        services.change_campaign_status(campaign=campaign, status=Campaign.Status.ACTIVE, actor=manager)
    # Generation normally runs on a worker after commit; run it here so no broker is needed (the
    # queued task finds the batch completed and does nothing).
    batches = []
    for campaign, count in ((weekend, BATCH_SIZE), (bonus, 50)):
        batch = services.create_code_batch(
            campaign=campaign, actor=manager, count=count, valid_until=midnight + dt.timedelta(days=60)
        )
        batches.append(services.generate_code_batch(batch_id=batch.pk))
    services.create_named_code(campaign=welcome, code=WELCOME_CODE, actor=manager, max_uses=10_000)

    members = list(
        Member.objects.filter(external_id__startswith="DEMO-", status=Member.Status.ACTIVE).order_by("external_id")
    )
    _reset_counters([m.pk for m in members])
    weekend_codes = list(Code.objects.filter(batch=batches[0]).order_by("id")[:40])
    bonus_codes = list(Code.objects.filter(batch=batches[1]).order_by("id")[:10])
    orders = iter(range(1, 10_000))

    def request(codes: list[str], member, amount: Decimal, *, client=POS_CLIENT, ip=POS_IP):
        return services.clean_request(
            codes=codes,
            member=member,
            order={"amount": str(amount), "channel": rng.choice(CHANNELS), "id": f"DEMO-ORD-{next(orders):05d}"},
            client=client,
            ip=ip,
        )

    def basket() -> Decimal:
        return Decimal(rng.randint(3200, 18000)) / 100

    def sample(k: int) -> list[Member]:
        return rng.sample(members, k=min(k, len(members)))

    used = refused = 0

    def redeem(codes: list[str], member) -> list[CodeRedemption]:
        nonlocal used, refused
        try:
            uses = services.redeem_codes(request(codes, member, basket()), actor=pos)
        except services.CodesRejected:
            refused += 1
            return []
        used += len(uses)
        return uses

    for member in sample(8):
        redeem([WELCOME_CODE], member)
    singles = weekend_codes[:12]
    for member, code in zip(sample(len(singles)), singles, strict=False):
        redeem([code.code], member)
    stacked = []
    for member, code, extra in zip(sample(5), weekend_codes[12:17], bonus_codes[:5], strict=False):
        stacked += redeem([code.code, extra.code], member)
    # The till canceled one stacked order: its bonus points go back.
    bonus_use = next((u for u in stacked if u.bonus_points), None)
    rolled_back = 0
    if bonus_use is not None:
        rolled_back = 1
        services.rollback_code_redemption(redemption=bonus_use, actor=support, reason="Order canceled at the till")
    # Baskets checked but not (yet) paid, and the usual refusals.
    checks = []
    for member, code in zip(sample(4), weekend_codes[20:24], strict=False):
        checks.append(([code.code], member, basket()))
    if members:
        checks.append(([WELCOME_CODE], members[0], Decimal("19.90")))  # below the 30 € minimum
        checks.append(([WELCOME_CODE, weekend_codes[24].code], members[-1], basket()))  # does not stack
    if singles:
        checks.append(([singles[0].code], None, basket()))  # already used
    for codes, member, amount in checks:
        services.validate_codes(request(codes, member, amount), actor=pos)
    for code in weekend_codes[30:32]:
        services.void_code(code=code, actor=manager, reason="Printed on a damaged flyer")
    # Someone guessing codes at one till: locked out at the limit, with an anomaly to review.
    for n in range(settings.CODE_FAILED_VALIDATION_LIMIT):
        guess = f"WELCOME{11 + n}"
        services.validate_codes(request([guess], None, basket(), client=GUESSING_CLIENT, ip=GUESSING_IP), actor=pos)
    say(
        stdout,
        "promotions",
        f"3 campaigns, {sum(b.generated for b in batches) + 1} codes, {used} code uses "
        f"({refused} orders refused, {rolled_back} rolled back), {len(checks)} validations, "
        f"{AbuseSignal.objects.count()} anomalies",
    )


register_demo_step(30, "promotions", seed_promotions)
