import pytest

from loyalty import roles
from promotions import services
from promotions.models import Campaign
from tests.helpers import make_user


@pytest.fixture
def manager(db):
    return make_user("cm", roles.CAMPAIGN_MANAGER)


@pytest.fixture
def make_campaign(manager, metric):
    def make(**fields):
        fields.setdefault("name", "Spring sale")
        fields.setdefault("kind", Campaign.Kind.PERCENT_DISCOUNT)
        fields.setdefault("value", 10)
        status = fields.pop("status", Campaign.Status.ACTIVE)
        campaign = services.create_campaign(actor=manager, **fields)
        if status != Campaign.Status.DRAFT:
            campaign = services.change_campaign_status(campaign=campaign, status=status, actor=manager)
        return campaign

    return make
