"""Demo redemptions, awards and rollbacks (run by ``manage.py seed_demo``).

Code pools for the two discount-code rewards, ~40 reward responses across their lifecycles
(pending, processing, completed, errored, canceled; submitted, approved, rejected and returned
approvals; shipped, delivered and lost parcels), awards (awarded, claimed, waiting for approval,
canceled), two rollbacks (one executed, one for fraud waiting for a second person) and three
redemptions imported from the legacy platform. Everything goes through ``redemptions.services``
with the demo users as actors; approvals are always by someone other than the requester.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from loyalty.demo import register_demo_step, say
from loyalty.kernel import save_with_history
from loyalty.models import Member, Reward
from promotions import services as promotions
from promotions.models import Campaign

from . import services
from .models import Redemption, RewardCodePool, Rollback

LEGACY_PREFIX = "DEMO-LEGACY-"
POOLS = [  # reward, campaign name, value, code pattern, codes generated up front
    ("RW-10OFF", "Reward codes: 10 € off", Decimal("10"), "RW10-????-####", 40),
    ("RW-25OFF", "Reward codes: 25 € off", Decimal("25"), "RW25-????-####", 0),
]


def seed_code_pools(users) -> int:
    """A campaign per discount-code reward whose codes the redemptions hand out."""
    manager = users["campaigns"]
    created = 0
    for external_id, name, value, pattern, count in POOLS:
        reward = Reward.objects.filter(external_id=external_id).first()
        if reward is None or RewardCodePool.objects.filter(reward=reward).exists():
            continue
        campaign = Campaign.objects.filter(name=name).first()
        if campaign is None:
            campaign = promotions.create_campaign(
                actor=manager,
                name=name,
                description=f"Codes issued by the reward “{reward.name}”.",
                kind=Campaign.Kind.FIXED_DISCOUNT,
                value=value,
                code_pattern=pattern,
            )
            promotions.change_campaign_status(campaign=campaign, status=Campaign.Status.ACTIVE, actor=manager)
            if count:
                batch = promotions.create_code_batch(campaign=campaign, actor=manager, count=count)
                promotions.generate_code_batch(batch_id=batch.pk)
        save_with_history(RewardCodePool(reward=reward, campaign=campaign), actor=manager, reason="Demo code pool")
        created += 1
    return created


class _Picker:
    """Active demo members who may take a reward now (tier, balance), new faces first."""

    def __init__(self, rng):
        self.rng = rng
        self.seen: set[int] = set()

    def __call__(self, reward: Reward, *, pay: bool = True, tiers: list[str] | None = None) -> Member | None:
        qs = Member.objects.filter(external_id__startswith="DEMO-", status=Member.Status.ACTIVE)
        eligible = list(reward.eligible_tiers.values_list("pk", flat=True))
        if tiers:
            qs = qs.filter(tier__code__in=tiers)
        if eligible:
            qs = qs.filter(tier__in=eligible)
        if pay:
            qs = qs.filter(balances__metric=reward.metric, balances__balance__gte=reward.points)
        qs = qs.exclude(redemptions__reward=reward, redemptions__approval_status=Redemption.ApprovalStatus.REJECTED)
        ids = sorted(set(qs.values_list("pk", flat=True)))
        if not ids:
            return None
        fresh = [pk for pk in ids if pk not in self.seen]
        pk = self.rng.choice(fresh or ids)
        self.seen.add(pk)
        return Member.objects.get(pk=pk)


def seed_redemptions(*, stdout, rng, users) -> None:
    if Redemption.objects.filter(external_ref__startswith=LEGACY_PREFIX).exists():
        say(stdout, "redemptions", "already seeded")
        return
    support, approver, pos, manager = users["support"], users["approver"], users["integration"], users["campaigns"]
    pools = seed_code_pools(users)
    rewards = {r.external_id: r for r in Reward.objects.all()}
    pick = _Picker(rng)
    made: list[Redemption] = []

    def redeem(external_id: str, **pick_options) -> Redemption | None:
        reward = rewards.get(external_id)
        member = pick(reward, **pick_options) if reward else None
        if member is None:
            return None
        actor, channel = rng.choice([(support, Redemption.Channel.ADMIN), (pos, Redemption.Channel.API)])
        redemption = services.redeem_reward(member=member, reward=reward, actor=actor, channel=channel)
        made.append(redemption)
        return redemption

    def award(external_id: str, reason: str, **pick_options) -> Redemption | None:
        reward = rewards.get(external_id)
        member = pick(reward, pay=False, **pick_options) if reward else None
        if member is None:
            return None
        redemption = services.award_reward(
            member=member, reward=reward, actor=support, reason=reason, channel=Redemption.Channel.ADMIN
        )
        made.append(redemption)
        return redemption

    def status(r: Redemption | None, *steps: str, reason: str = "") -> None:
        for target in steps:
            if r is not None:
                services.change_status(redemption=r, status=target, actor=support, reason=reason)

    def ship(r: Redemption | None, *steps: str) -> None:
        for target in steps:
            if r is not None:
                services.change_fulfillment(
                    redemption=r,
                    fulfillment_status=target,
                    actor=support,
                    tracking_ref=f"DEMO-TRK-{r.pk:06d}" if target == Redemption.Fulfillment.SHIPPED else "",
                )

    paid, shipped, delivered = (
        Redemption.Fulfillment.CONFIRMED_PAID,
        Redemption.Fulfillment.SHIPPED,
        Redemption.Fulfillment.DELIVERED,
    )
    processing, completed = Redemption.Status.PROCESSING, Redemption.Status.COMPLETED
    # Experiences that need an approver (four-eyes: never the person who asked). Where nobody can
    # pay for one (a small demo), the tour is given as an award, which needs the same approval.
    tours = [redeem("RW-TOUR") or award("RW-TOUR", "Top reviewer of the quarter") for _ in range(4)]
    if tours[1] is not None:
        services.approve_redemption(redemption=tours[1], actor=approver, reason="Dates confirmed")
        status(tours[1], completed)
    if tours[2] is not None:
        services.reject_redemption(redemption=tours[2], actor=approver, reason="The tour is fully booked")
    if tours[3] is not None:
        services.return_redemption(redemption=tours[3], actor=approver, reason="Please pick a date first")
    # Coffee mugs: the whole shipping lifecycle.
    fraud_target = redeem("RW-MUG")  # left pending; a rollback for fraud waits on it below
    redeem("RW-MUG")
    for _ in range(2):
        status(redeem("RW-MUG"), processing)
    for _ in range(2):
        r = redeem("RW-MUG")
        status(r, processing)
        ship(r, paid, shipped)
    for _ in range(2):
        r = redeem("RW-MUG")
        ship(r, paid, shipped, delivered)
        status(r, completed)
    r = redeem("RW-MUG")
    ship(r, paid, shipped, Redemption.Fulfillment.LOST_IN_TRANSIT)
    status(redeem("RW-MUG"), Redemption.Status.CANCELED, reason="The member changed their mind")
    status(redeem("RW-MUG"), processing, Redemption.Status.ERRORED, reason="Warehouse API timed out")
    # Discount codes: issued at once from the reward's pool.
    code_redemptions = [redeem("RW-10OFF") for _ in range(10)]
    for r in code_redemptions:
        status(r, completed)
    status(redeem("RW-10OFF"), Redemption.Status.CANCELED, reason="Redeemed twice by mistake")
    for _ in range(3):
        status(redeem("RW-25OFF"), completed)
    backpack = redeem("RW-BACKPACK")  # only if someone can afford it
    if backpack is not None:
        services.approve_redemption(redemption=backpack, actor=approver, reason="Stock reserved")
        ship(backpack, paid)
    # Awards: free rewards with a reason.
    badges = [award("RW-BADGE-EARLY", "Joined in the first month") for _ in range(6)]
    for b in badges[:3]:
        if b is not None:
            services.change_award_status(redemption=b, award_status=Redemption.AwardStatus.CLAIMED, actor=support)
    for _ in range(2):
        award("RW-BADGE-GOLD", "Gold for a full year")
    award("RW-10OFF", "Apology for a late delivery")
    ship(award("RW-MUG", "Winner of the store opening raffle"), paid)
    tour_awards = [award("RW-TOUR", "Top reviewer of the quarter") for _ in range(2)]
    if tour_awards[0] is not None:
        services.approve_redemption(redemption=tour_awards[0], actor=approver, reason="Agreed with marketing")
    canceled = award("RW-BADGE-EARLY", "Joined in the first month")
    if canceled is not None:
        services.change_award_status(
            redemption=canceled,
            award_status=Redemption.AwardStatus.CANCELED,
            actor=support,
            reason="Given to the wrong member",
        )
    # Rollbacks: one executed at once, one for fraud that waits for an approver.
    rollbacks = 0
    target = next((r for r in code_redemptions if r is not None), None)
    if target is not None:
        services.rollback_redemption(
            redemption=target, reason=Rollback.Reason.CUSTOMER_REQUEST, actor=support, note="Redeemed by mistake"
        )
        rollbacks += 1
    if fraud_target is not None:
        services.rollback_redemption(
            redemption=fraud_target,
            reason=Rollback.Reason.FRAUD,
            actor=support,
            note="The account was used from two countries on the same day",
        )
        rollbacks += 1
    # History from the legacy platform: no ledger movement, never rolled back here.
    imported = 0
    legacy = [("RW-MUG", 800, Redemption.Status.COMPLETED, 400), ("RW-10OFF", 500, Redemption.Status.COMPLETED, 380)]
    legacy.append(("RW-MUG", 800, Redemption.Status.CANCELED, 420))
    for n, (external_id, points, final, days_ago) in enumerate(legacy, start=1):
        reward = rewards.get(external_id)
        member = pick(reward, pay=False) if reward else None
        if member is None:
            continue
        services.import_legacy_redemption(
            member=member,
            reward=reward,
            quantity=1,
            points_spent=points,
            status=final,
            created_at=timezone.now() - dt.timedelta(days=days_ago, hours=rng.randint(0, 23)),
            external_ref=f"{LEGACY_PREFIX}{n:05d}",
            actor=manager,
        )
        imported += 1
    awards = sum(1 for r in made if r.kind == Redemption.Kind.AWARD)
    say(
        stdout,
        "redemptions",
        f"{pools} code pools, {len(made) - awards} redemptions, {awards} awards, {rollbacks} rollbacks, "
        f"{imported} legacy imports",
    )


register_demo_step(40, "redemptions", seed_redemptions)
