"""The read replica route: lists shown, exports and reports read the replica alias; writes, a list's
POST and anything inside a transaction stay on the primary.

The replica here is a second connection to the same test database (``TEST: {"MIRROR": "default"}``,
config/settings_test.py); transactional tests, so that it sees what the primary committed.
"""

import pytest
from django.contrib import admin as django_admin
from django.db import connections, transaction
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.replica import reporting, reporting_db
from promotions import selectors
from promotions import services as promotions
from redemptions.models import Redemption
from tests.helpers import admin_url, login

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "replica"]),
    pytest.mark.filterwarnings("ignore:No directory at"),
]


@pytest.fixture
def replica(settings):
    settings.READ_REPLICA = "replica"
    return connections["replica"]


def on(alias: str):
    return CaptureQueriesContext(connections[alias])


def test_without_a_replica_everything_reads_the_primary(settings):
    settings.READ_REPLICA = ""
    assert reporting_db() == "default"
    assert reporting(Redemption.objects.all()).db == "default"


def test_reports_read_the_replica_but_not_inside_a_transaction(replica, admin_user):
    campaign = promotions.create_campaign(actor=admin_user, name="R", kind="fixed_discount", value=5)
    with on("default") as primary, on("replica") as read:
        stats = selectors.campaign_stats(campaign)
    assert stats["redemptions"] == 0
    assert len(read.captured_queries) == 3 and not primary.captured_queries
    with transaction.atomic(), on("replica") as read:
        assert reporting_db() == "default"
        selectors.campaign_stats(campaign)
    assert not read.captured_queries


def test_a_list_shown_and_its_export_read_the_replica_an_action_post_does_not(replica, admin_user):
    loyalty.enroll_member(external_id="M-1", actor=SYSTEM)
    client = login(admin_user)
    with on("replica") as read:
        page = client.get(admin_url("loyalty_member_changelist"))
    assert page.status_code == 200 and b"M-1" in page.content
    assert any("loyalty_member" in q["sql"] for q in read.captured_queries)

    export = client.get(admin_url("redemptions_redemption_export_csv"))
    b"".join(export.streaming_content)
    assert export.status_code == 200
    # (on PostgreSQL the export is a COPY on the raw cursor, which query capture does not see)
    request = RequestFactory().get(admin_url("redemptions_redemption_export_csv"))
    request.user = admin_user
    assert django_admin.site._registry[Redemption].get_export_queryset(request).db == "replica"

    with on("replica") as read:
        client.post(admin_url("loyalty_member_changelist"), {"action": "", "_selected_action": []})
    assert not any("loyalty_member" in q["sql"] for q in read.captured_queries)


def test_the_replica_is_never_migrated(replica):
    from django.db import router

    assert router.allow_migrate("replica", "loyalty") is False
    assert router.allow_migrate("default", "loyalty") is not False
