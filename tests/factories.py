"""factory-boy factories for the main models.

Plain reference data (users, metrics, tiers, rewards) is built with ``DjangoModelFactory``. Everything
with rules, history or money is built **through the services**, the way the admin and the API build
it: members are enrolled, points are credited through the ledger (never a balance written by hand),
rule sets are drafted and published, campaigns move through their transition table, redemptions
spend points. So ``verify_ledger()`` holds on any data the factories make.

Service-built factories act as the explicit system actor (``loyalty.kernel.SYSTEM``) unless given
``actor=``; the ones whose model records a person (retro claims, rollbacks) default to a user of
the right role.

    member = MemberFactory(points=500)               # enrolled, 500 points credited by the ledger
    reward = RewardFactory(points=100, stock=3)
    redemption = RedemptionFactory(member=member, reward=reward)
    auditor = AuditorFactory()                       # a staff user in the Auditor group

Factories are opt-in: the shared fixtures in ``tests/conftest.py`` (``member``, ``metric``, ``tiers``,
the role users) keep their fixed names and values, which many assertions rely on.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone
from factory.django import DjangoModelFactory

from loyalty import roles
from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import Member, Metric, ProgramSettings, Reward, RuleSet, Tier, Transaction
from promotions import services as promotions
from promotions.models import Campaign, Code, CodeBatch, CodeRedemption
from redemptions import services as redemptions
from redemptions.models import Redemption, Rollback
from retro import services as retro
from retro.models import RetroClaim

# --- users with each role ----------------------------------------------------------------------------


class UserFactory(DjangoModelFactory):
    """A user; ``role`` names a group (``roles.SUPPORT_AGENT``...), staff for the staff roles.
    The password is ``pw-<username>``, as ``tests.helpers.make_user`` sets it."""

    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    role = None
    is_superuser = False
    is_staff = factory.LazyAttribute(lambda u: u.is_superuser or u.role in roles.STAFF_ROLES)

    @classmethod
    def _create(cls, model_class, *args, role: str | None = None, **kwargs):
        user = super()._create(model_class, *args, **kwargs)
        user.set_password(f"pw-{user.username}")
        user.save(update_fields=["password"])
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user


class SupportAgentFactory(UserFactory):
    username = factory.Sequence(lambda n: f"support{n}")
    role = roles.SUPPORT_AGENT


class ApproverFactory(UserFactory):
    username = factory.Sequence(lambda n: f"approver{n}")
    role = roles.APPROVER


class CampaignManagerFactory(UserFactory):
    username = factory.Sequence(lambda n: f"campaigns{n}")
    role = roles.CAMPAIGN_MANAGER


class AuditorFactory(UserFactory):
    username = factory.Sequence(lambda n: f"auditor{n}")
    role = roles.AUDITOR


class IntegrationUserFactory(UserFactory):
    username = factory.Sequence(lambda n: f"integration{n}")
    role = roles.INTEGRATION


class SuperuserFactory(UserFactory):
    username = factory.Sequence(lambda n: f"admin{n}")
    is_superuser = True


# --- reference data -----------------------------------------------------------------------------------


class MetricFactory(DjangoModelFactory):
    """The ``points`` metric (one year expiry) unless told otherwise; get-or-create by code."""

    class Meta:
        model = Metric
        django_get_or_create = ("code",)

    code = "points"
    name = factory.LazyAttribute(lambda m: m.code.replace("_", " ").capitalize())
    expiry_days = 365


class TierFactory(DjangoModelFactory):
    class Meta:
        model = Tier
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"TIER{n}")
    name = factory.LazyAttribute(lambda t: t.code.capitalize())
    rank = factory.Sequence(lambda n: n + 1)


def standard_tiers() -> dict[str, Tier]:
    """BRONZE / SILVER / GOLD with the thresholds of the ``tiers`` fixture."""
    return {
        code: TierFactory(code=code, name=code.capitalize(), rank=rank, spend_threshold=threshold)
        for code, rank, threshold in (("BRONZE", 1, 0), ("SILVER", 2, 500), ("GOLD", 3, 2000))
    }


class RewardFactory(DjangoModelFactory):
    """A physical product costing 100 points of the ``points`` metric, unlimited stock."""

    class Meta:
        model = Reward
        django_get_or_create = ("external_id",)

    external_id = factory.Sequence(lambda n: f"RW-F{n}")
    name = factory.Sequence(lambda n: f"Reward {n}")
    type = Reward.Type.PHYSICAL_PRODUCT
    metric = factory.SubFactory(MetricFactory)
    points = 100


# --- built through the services -----------------------------------------------------------------------


class ServiceFactory(factory.Factory):
    """A factory whose ``_create`` calls a service; ``build()`` is refused (it would skip the rules)."""

    class Meta:
        abstract = True

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        raise TypeError(f"{cls.__name__} builds through the services: use create().")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return cls.create_through_service(**kwargs)

    @classmethod
    def create_through_service(cls, **kwargs: Any):
        raise NotImplementedError


class ProgramSettingsFactory(ServiceFactory):
    """The program's settings row, changed through ``update_program_settings`` (with history)."""

    class Meta:
        model = ProgramSettings

    @classmethod
    def create_through_service(cls, actor=SYSTEM, **fields):
        if not fields:
            return ProgramSettings.load()
        return loyalty.update_program_settings(actor=actor, reason="Test settings", **fields)


class MemberFactory(ServiceFactory):
    """An enrolled member (``enroll_member``); ``points=N`` credits N points through the ledger."""

    class Meta:
        model = Member

    external_id = factory.Sequence(lambda n: f"F-{n:05d}")
    name = factory.Sequence(lambda n: f"Member {n}")
    email = factory.LazyAttribute(lambda m: f"{m.external_id.lower()}@example.com")
    tier = None
    points = 0

    @classmethod
    def create_through_service(cls, *, points: int = 0, metric: Metric | None = None, actor=SYSTEM, **fields):
        member = loyalty.enroll_member(actor=actor, **fields)
        if points:
            loyalty.credit_points(
                member=member, metric=metric or MetricFactory(), amount=points, actor=actor, reason="Test credit"
            )
        return member


def credit(member: Member, amount: int, *, metric: Metric | None = None, **options) -> Any:
    """Credit ``amount`` points through the ledger service (the only way tests give points)."""
    options.setdefault("actor", SYSTEM)
    options.setdefault("reason", "Test credit")
    return loyalty.credit_points(member=member, metric=metric or MetricFactory(), amount=amount, **options)


FIXED_RULE = {"name": "Visit", "metric": "points", "action": "fixed", "points": 10}


class RuleSetFactory(ServiceFactory):
    """A rule set drafted by ``create_rule_set`` and, unless ``publish=False``, published.

    Default: one fixed 10-point rule, valid from a year ago, open-ended."""

    class Meta:
        model = RuleSet

    name = factory.Sequence(lambda n: f"Rules {n}")
    valid_from = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=365))
    rules = factory.LazyFunction(lambda: [dict(FIXED_RULE)])
    publish = True

    @classmethod
    def create_through_service(cls, *, publish: bool = True, actor=SYSTEM, **fields):
        MetricFactory()  # the rules name the points metric
        rule_set = loyalty.create_rule_set(actor=actor, **fields)
        if publish:
            rule_set = loyalty.publish_rule_set(rule_set=rule_set, actor=actor)
        return rule_set


class TransactionFactory(ServiceFactory):
    """A purchase recorded by ``record_transaction``: with a ``member`` it earns by the rules in force;
    ``member=None`` makes an anonymous bill (what a retro claim attaches)."""

    class Meta:
        model = Transaction

    external_id = factory.Sequence(lambda n: f"BILL-F{n:05d}")
    occurred_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(hours=1))
    amount = Decimal("100.00")
    currency = "EUR"
    store = "Test store"
    member = factory.SubFactory(MemberFactory)

    @classmethod
    def create_through_service(cls, *, actor=SYSTEM, **fields):
        return loyalty.record_transaction(actor=actor, **fields)


class CampaignFactory(ServiceFactory):
    """A campaign created by ``create_campaign`` and moved to ``status`` (active by default) through
    its transition table."""

    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    kind = Campaign.Kind.PERCENT_DISCOUNT
    value = Decimal("10")
    status = Campaign.Status.ACTIVE

    @classmethod
    def create_through_service(cls, *, status: str = Campaign.Status.ACTIVE, actor=SYSTEM, **fields):
        if fields.get("kind") == Campaign.Kind.BONUS_POINTS:
            fields.setdefault("metric", MetricFactory())
        campaign = promotions.create_campaign(actor=actor, **fields)
        if status != Campaign.Status.DRAFT:
            if status != Campaign.Status.ACTIVE:  # paused and ended are reached from active
                campaign = promotions.change_campaign_status(
                    campaign=campaign, status=Campaign.Status.ACTIVE, actor=actor
                )
            campaign = promotions.change_campaign_status(campaign=campaign, status=status, actor=actor)
        return campaign


class CodeBatchFactory(ServiceFactory):
    """A batch queued by ``create_code_batch`` and generated at once (``generate=False`` leaves it
    pending, as before the worker picks it up)."""

    class Meta:
        model = CodeBatch

    campaign = factory.SubFactory(CampaignFactory)
    count = 5
    generate = True

    @classmethod
    def create_through_service(cls, *, generate: bool = True, actor=SYSTEM, **fields):
        batch = promotions.create_code_batch(actor=actor, **fields)
        if generate:
            batch = promotions.generate_code_batch(batch_id=batch.pk)
        return batch


class CodeFactory(ServiceFactory):
    """A named code (``create_named_code``), single-use unless ``max_uses`` says otherwise."""

    class Meta:
        model = Code

    campaign = factory.SubFactory(CampaignFactory)
    code = factory.Sequence(lambda n: f"FACTORY{n}")

    @classmethod
    def create_through_service(cls, *, actor=SYSTEM, **fields):
        return promotions.create_named_code(actor=actor, **fields)


class CodeRedemptionFactory(ServiceFactory):
    """One code used on an order through ``redeem_codes`` (the order is 50 EUR unless ``order=``)."""

    class Meta:
        model = CodeRedemption

    code = factory.SubFactory(CodeFactory)
    member = factory.SubFactory(MemberFactory)
    order = factory.Sequence(lambda n: {"id": f"ORDER-F{n}", "amount": "50.00"})

    @classmethod
    def create_through_service(cls, *, code: Code, member: Member | None, order: dict, actor=SYSTEM):
        request = promotions.clean_request(codes=[code.code], member=member, order=order, client="factory")
        (redemption,) = promotions.redeem_codes(request, actor=actor)
        return redemption


class RedemptionFactory(ServiceFactory):
    """A member spending points on a reward (``redeem_reward``). The member gets exactly the points
    the reward costs, credited through the ledger, unless ``fund=False``."""

    class Meta:
        model = Redemption

    member = factory.SubFactory(MemberFactory)
    reward = factory.SubFactory(RewardFactory)
    quantity = 1
    fund = True

    @classmethod
    def create_through_service(cls, *, member: Member, reward: Reward, fund: bool = True, actor=SYSTEM, **fields):
        cost = reward.points * fields.get("quantity", 1)
        if fund and cost:
            credit(member, cost, metric=reward.metric)
        return redemptions.redeem_reward(member=member, reward=reward, actor=actor, **fields)


class AwardFactory(ServiceFactory):
    """A reward given for free (``award_reward``), with a reason."""

    class Meta:
        model = Redemption

    member = factory.SubFactory(MemberFactory)
    reward = factory.SubFactory(RewardFactory)
    reason = "Goodwill"

    @classmethod
    def create_through_service(cls, *, actor=SYSTEM, **fields):
        return redemptions.award_reward(actor=actor, **fields)


class RollbackFactory(ServiceFactory):
    """A rollback of a redemption (``rollback_redemption``), requested by a support agent. Whether
    it executes at once or waits for approval is the program's rollback policy."""

    class Meta:
        model = Rollback

    redemption = factory.SubFactory(RedemptionFactory)
    reason = Rollback.Reason.CUSTOMER_REQUEST
    actor = factory.LazyFunction(lambda: SupportAgentFactory())

    @classmethod
    def create_through_service(cls, **fields):
        return redemptions.rollback_redemption(**fields)


class RetroClaimFactory(ServiceFactory):
    """A retro claim filed by a support agent for an anonymous bill of the last hour. Switches retro
    on first (through ``update_program_settings``) when it is off."""

    class Meta:
        model = RetroClaim

    member = factory.SubFactory(
        MemberFactory, enrolled_at=factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=30))
    )
    transaction_ = factory.SubFactory(TransactionFactory, member=None)
    actor = factory.LazyFunction(lambda: SupportAgentFactory())
    note = "Forgot the card"

    @classmethod
    def create_through_service(cls, **fields):
        if not ProgramSettings.load().retro_enabled:
            ProgramSettingsFactory(retro_enabled=True)
        return retro.submit_retro_claim(**fields)
