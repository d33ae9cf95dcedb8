"""Fill a development database with a believable, deterministic demo.

Everything goes through ``services`` (enrolment, credits, debits, adjustments, tier changes), so
the demo data obeys the same rules as real data and ``verify_ledger`` passes on it. Running it
again creates nothing new.

After its own data (users, metrics, tiers, members, segments, rewards) it runs the steps that the
apps' ``demo`` modules register (see ``loyalty/demo.py``): rule sets and purchases, campaigns and
codes, redemptions and rollbacks, retro claims. Emails those steps would send to demo members are
dropped (the demo addresses are not real).

Demo users have known passwords, so the command refuses to run unless DEBUG is on (or --force is
given for a throwaway database).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings
from django.utils import timezone

from loyalty import roles, services
from loyalty.demo import SEED, run_demo_steps
from loyalty.kernel import SYSTEM, unit_of_work
from loyalty.models import ApiKey, LedgerEntry, Member, Metric, PointBalance, Reward, Segment, Tier, TierMembership

ADMIN_URL = "http://127.0.0.1:8000/admin/"
DEMO_KEY_NAME = "Demo integration key"

DEMO_USERS = [  # (username, role or None for the superuser)
    ("admin", None),
    ("support", roles.SUPPORT_AGENT),
    ("approver", roles.APPROVER),
    ("campaigns", roles.CAMPAIGN_MANAGER),
    ("auditor", roles.AUDITOR),
    ("integration", roles.INTEGRATION),
]

TIERS = [  # code, name, rank, spend threshold, purchase threshold
    ("BRONZE", "Bronze", 1, 0, 0),
    ("SILVER", "Silver", 2, 500, 5),
    ("GOLD", "Gold", 3, 2000, 20),
]
# Tier a member qualifies for by lifetime status credits (demo rule).
STATUS_CREDITS_FOR = {"GOLD": 150, "SILVER": 60}

FIRST_NAMES = [
    "Ann",
    "Ben",
    "Clara",
    "David",
    "Emma",
    "Felix",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Karin",
    "Leo",
    "Mia",
    "Noah",
    "Olga",
    "Paul",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Uma",
    "Victor",
    "Wendy",
    "Yusuf",
]
LAST_NAMES = [
    "Andersen",
    "Brown",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Horvat",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Müller",
    "Novak",
    "Oliveira",
    "Petrov",
    "Rossi",
    "Schmidt",
]
STORES = ["Downtown store", "Airport store", "Web shop", "Mall store", "Mobile app"]

REWARDS = [  # external_id, name, type, points, stock, approval, fulfillment, eligible tier codes
    ("RW-MUG", "Branded coffee mug", Reward.Type.PHYSICAL_PRODUCT, 800, 120, False, True, []),
    ("RW-BACKPACK", "Travel backpack", Reward.Type.PHYSICAL_PRODUCT, 4500, 15, True, True, ["SILVER", "GOLD"]),
    ("RW-10OFF", "10 € discount code", Reward.Type.DISCOUNT_CODE, 500, None, False, False, []),
    ("RW-25OFF", "25 € discount code", Reward.Type.DISCOUNT_CODE, 1200, None, False, False, ["SILVER", "GOLD"]),
    ("RW-BADGE-EARLY", "Early bird badge", Reward.Type.BADGE, 100, None, False, False, []),
    ("RW-BADGE-GOLD", "Gold insider badge", Reward.Type.BADGE, 300, None, False, False, ["GOLD"]),
    ("RW-CHEF", "Chef's table dinner for two", Reward.Type.EXPERIENCE, 9000, 4, True, True, ["GOLD"]),
    ("RW-TOUR", "Behind-the-scenes tour", Reward.Type.EXPERIENCE, 3000, 20, True, False, ["SILVER", "GOLD"]),
]


@contextmanager
def _quiet_task_logs():
    """Tasks queued by the demo (code generation, emails) run eagerly on commit without a broker;
    their one-line-per-task logs would bury the login table."""
    loggers = {name: logging.getLogger(name) for name in ("celery.app.trace", "kombu.connection")}
    levels = {name: lg.level for name, lg in loggers.items()}
    for lg in loggers.values():
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, lg in loggers.items():
            lg.setLevel(levels[name])


def demo_password(username: str) -> str:
    return f"demo-{username}"


class Command(BaseCommand):
    help = (
        "Create demo data for every screen: role users, metrics, tiers, members with ledger history, segments, "
        "rewards, then each app's demo steps (rule sets, purchases, campaigns, codes, redemptions, retro claims)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=300, help="How many demo members (default 300).")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off (only on a throwaway database: it creates known passwords).",
        )

    def handle(self, *args, members: int = 300, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates users with known passwords; it runs only with DEBUG=true "
                "(or --force on a throwaway database)."
            )
        if members < 0:
            raise CommandError("--members must not be negative.")
        started = time.monotonic()
        now = timezone.now()
        # Emails to demo members (queued after commit) go nowhere: their addresses are made up.
        with (
            override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"),
            _quiet_task_logs(),
            unit_of_work("seed_demo"),  # one transaction: a failed seed leaves nothing half-made
        ):
            users = self.seed_users()
            metrics = self.seed_metrics()
            tiers = self.seed_tiers()
            created = self.seed_members(members, metrics=metrics, tiers=tiers, support=users["support"], now=now)
            # Lots created already past their expiry (imported history) expire now, as the nightly job would.
            expired = services.expire_points(now=now)
            self.seed_segments(tiers)
            self.seed_rewards(metrics, tiers)
            run_demo_steps(stdout=self.stdout, users=users, seed=SEED)
        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready in {elapsed:.1f}s: {created} new members ({Member.objects.count()} in total), "
                f"{expired} expiry entries, {LedgerEntry.objects.count()} ledger entries, "
                f"{Reward.objects.count()} rewards, {Segment.objects.count()} segments."
            )
        )
        self.print_logins(users)

    # --- users ---------------------------------------------------------------------------------
    def seed_users(self) -> dict[str, User]:
        roles.sync_role_permissions()  # groups exist even on a database created without migrations' data
        users = {}
        for username, role in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User(
                    username=username,
                    email=f"{username}@demo.example.com",
                    first_name=username.capitalize(),
                    last_name="Demo",
                )
                user.set_password(demo_password(username))
                user.is_superuser = role is None
                user.is_staff = role is None or role in roles.STAFF_ROLES
                user.save()
            if role is not None:
                user.groups.add(Group.objects.get(name=role))
            users[username] = user
        return users

    def print_logins(self, users: dict[str, User]) -> None:
        # A new key on every run (an old one cannot be shown again: only its digest is stored); the
        # previous run's key is revoked, so there is one live demo key.
        for old in ApiKey.objects.filter(owner=users["integration"], name=DEMO_KEY_NAME, revoked_at__isnull=True):
            services.revoke_api_key(api_key=old, actor=SYSTEM, reason="Replaced by a new seed_demo run")
        key = services.create_api_key(
            owner=users["integration"], name=DEMO_KEY_NAME, actor=SYSTEM, reason="seed_demo"
        ).key
        rows = [("Username", "Password", "Role", "Admin")]
        for username, role in DEMO_USERS:
            admin_access = "yes" if users[username].is_staff else "no (API)"
            rows.append((username, demo_password(username), role or "Superuser", admin_access))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        self.stdout.write("")
        self.stdout.write(f"Sign in at {ADMIN_URL}")
        for i, row in enumerate(rows):
            self.stdout.write("  " + "  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)))
            if i == 0:
                self.stdout.write("  " + "  ".join("-" * w for w in widths))
        self.stdout.write(f"API key of 'integration': {key}  (header: Authorization: Token <key>)")

    # --- reference data --------------------------------------------------------------------------
    def seed_metrics(self) -> dict[str, Metric]:
        points, _ = Metric.objects.get_or_create(code="points", defaults={"name": "Points", "expiry_days": 365})
        credits, _ = Metric.objects.get_or_create(
            code="status_credits", defaults={"name": "Status credits", "expiry_days": None}
        )
        return {"points": points, "status_credits": credits}

    def seed_tiers(self) -> dict[str, Tier]:
        tiers = {}
        for code, name, rank, spend, purchases in TIERS:
            tier = Tier.objects.filter(code=code).first()
            if tier is None:
                tier = Tier.objects.create(
                    code=code, name=name, rank=rank, spend_threshold=spend, purchase_threshold=purchases
                )
            tiers[code] = tier
        return tiers

    # --- members and their history ---------------------------------------------------------------
    def seed_members(self, count: int, *, metrics, tiers, support: User, now: dt.datetime) -> int:
        existing = set(Member.objects.filter(external_id__startswith="DEMO-").values_list("external_id", flat=True))
        created = 0
        for i in range(1, count + 1):
            external_id = f"DEMO-{i:05d}"
            if external_id in existing:
                continue
            # One generator per member, derived from the seed: member i is the same whatever else exists.
            rng = random.Random(SEED * 1_000_003 + i)
            self.seed_member(i, external_id, rng, metrics=metrics, tiers=tiers, support=support, now=now)
            created += 1
        return created

    def seed_member(self, i: int, external_id: str, rng: random.Random, *, metrics, tiers, support, now) -> None:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first}.{last}.{i}@example.com".lower().replace("ü", "u").replace("í", "i")
        phone = f"+4470{i:08d}"
        enrolled_at = now - dt.timedelta(days=rng.randint(30, 900), minutes=rng.randint(0, 1439))
        member = services.enroll_member(
            external_id=external_id,
            email=email,
            name=f"{first} {last}",
            phone=phone,
            tier=tiers["BRONZE"],
            enrolled_at=enrolled_at,
            reason="Demo enrolment",
            actor=SYSTEM,
        )
        points, credits = metrics["points"], metrics["status_credits"]

        def credit(amount: int, reason: str, source: str, *, metric=points, earned_at=None, **kw) -> None:
            """Points (or status credits) for this member; a lot ``earned_at`` expires a year later."""
            if earned_at is not None:
                kw.update(effective_at=earned_at, expires_at=earned_at + dt.timedelta(days=365))
            kw.setdefault("source_type", "demo_purchase")
            services.credit_points(
                member=member,
                metric=metric,
                amount=amount,
                reason=reason,
                source_id=f"{external_id}-{source}",
                actor=SYSTEM,
                **kw,
            )

        max_age = min(330, (now - enrolled_at).days)
        status_total = 0
        for n in range(rng.randint(2, 7)):
            age = rng.randint(1, max_age)
            earned_at = now - dt.timedelta(days=age, hours=rng.randint(0, 23))
            amount = rng.randint(5, 160) * 5
            store = rng.choice(STORES)
            breakdown = {"store": store, "base": amount}
            credit(amount, f"Purchase at {store}", str(n), earned_at=earned_at, breakdown=breakdown)
            status_total += max(1, amount // 20)
        # Status credits never expire: one credit for the period's purchases keeps the demo quick.
        credit(status_total, "Status credits for the period's purchases", "status", metric=credits, never_expires=True)
        if i % 7 == 0:  # a lot that expires within the next two weeks
            earned_at = now - dt.timedelta(days=365 - rng.randint(2, 14))
            credit(rng.randint(10, 60) * 5, "Purchase at Web shop", "soon", earned_at=earned_at)
        if i % 11 == 0:  # an old lot, already past its expiry: the expiry job turns it into an entry
            earned_at = now - dt.timedelta(days=365 + rng.randint(5, 60))
            legacy = rng.randint(4, 30) * 5
            credit(legacy, "Imported legacy points", "legacy", earned_at=earned_at, source_type="demo_import")
        # Redemptions are made by redemptions/demo.py through the real service, so every "Redeem"
        # ledger row has its redemption behind it.
        if i % 9 == 0:
            services.adjust_points(
                member=member,
                metric=points,
                amount=rng.choice([50, 100, 250]),
                actor=support,
                reason="Goodwill: late delivery",
            )
        target = next((code for code, needed in STATUS_CREDITS_FOR.items() if status_total >= needed), None)
        if target:
            services.change_tier(
                member=member,
                tier=tiers[target],
                actor=SYSTEM,
                reason="Qualified on status credits",
                cause=TierMembership.Cause.QUALIFICATION,
            )
        elif i % 13 == 0:
            services.change_tier(member=member, tier=tiers["SILVER"], actor=support, reason="Service recovery upgrade")
        if i % 17 == 0:
            services.update_member(
                member=member, actor=support, reason="Suspected account sharing", status=Member.Status.SUSPENDED
            )
        elif i % 29 == 0:
            services.update_member(
                member=member, actor=support, reason="Closed at the member's request", status=Member.Status.CLOSED
            )

    @staticmethod
    def _balance(member: Member, metric: Metric) -> int:
        return PointBalance.objects.filter(member=member, metric=metric).values_list("balance", flat=True).first() or 0

    # --- segments and rewards --------------------------------------------------------------------
    def seed_segments(self, tiers: dict[str, Tier]) -> None:
        demo = Member.objects.filter(external_id__startswith="DEMO-")
        vip, _ = Segment.objects.get_or_create(
            code="demo-gold", defaults={"name": "Gold members", "description": "Every demo member in Gold."}
        )
        newsletter, _ = Segment.objects.get_or_create(
            code="demo-newsletter", defaults={"name": "Newsletter subscribers", "description": "Opted in to email."}
        )
        self._add_missing(vip, demo.filter(tier=tiers["GOLD"]).values_list("pk", flat=True))
        self._add_missing(newsletter, [pk for pk in demo.order_by("pk").values_list("pk", flat=True) if pk % 3 == 0])

    @staticmethod
    def _add_missing(segment: Segment, member_ids) -> None:
        have = set(segment.members.values_list("pk", flat=True))
        missing = [pk for pk in member_ids if pk not in have]
        if missing:
            segment.members.add(*missing)

    def seed_rewards(self, metrics: dict[str, Metric], tiers: dict[str, Tier]) -> None:
        for ext, name, kind, cost, stock, approval, fulfillment, eligible in REWARDS:
            if Reward.objects.filter(external_id=ext).exists():
                continue
            reward = Reward.objects.create(
                external_id=ext,
                name=name,
                type=kind,
                metric=metrics["points"],
                points=cost,
                stock=stock,
                requires_approval=approval,
                requires_fulfillment=fulfillment,
                description=f"Demo reward: {name.lower()}.",
            )
            if eligible:
                reward.eligible_tiers.set([tiers[code] for code in eligible])
