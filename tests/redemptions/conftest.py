import pytest

from loyalty import roles
from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import ProgramSettings, Reward
from promotions import services as promotions
from redemptions.models import RewardCodePool
from tests.helpers import make_user


@pytest.fixture
def rich_member(member, metric):
    loyalty.credit_points(member=member, metric=metric, amount=1000, reason="opening", actor=SYSTEM)
    return member


@pytest.fixture
def reward(metric):
    def make(**fields):
        fields.setdefault("external_id", f"R-{Reward.objects.count() + 1}")
        fields.setdefault("name", "Tote bag")
        fields.setdefault("type", Reward.Type.PHYSICAL_PRODUCT)
        fields.setdefault("points", 100)
        return Reward.objects.create(metric=metric, **fields)

    return make


@pytest.fixture
def approver2(db):
    return make_user("approver2", roles.APPROVER)


@pytest.fixture
def code_reward(reward, admin_user):
    campaign = promotions.create_campaign(actor=admin_user, name="Reward codes", kind="fixed_discount", value=10)
    campaign = promotions.change_campaign_status(campaign=campaign, status="active", actor=admin_user)
    r = reward(type=Reward.Type.DISCOUNT_CODE, name="10 EUR voucher", valid_days=30)
    RewardCodePool.objects.create(reward=r, campaign=campaign)
    return r


@pytest.fixture
def policy(db):
    """The program settings, whose rollback policy the tests change."""
    return ProgramSettings.load()
