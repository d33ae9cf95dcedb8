"""The operations home and the dashboard page, rendered through the admin (issue 17)."""

from __future__ import annotations

import json

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client

from tests.helpers import d

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def client_for(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_the_approver_sees_the_waiting_rollback_its_age_advice_and_a_chart(figures, approver_user):
    with time_machine.travel(d(2026, 3, 6, 8), tick=False):
        page = client_for(approver_user).get("/admin/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="queue-rollback_approvals"' in html
    assert 'data-count="1"' in html
    assert "2 d 0 h" in html  # requested on March 4th at 08:00
    assert "You cannot approve a rollback you requested" in html
    chart = json.loads(html.split('id="home-chart-data" type="application/json">')[1].split("</script>")[0])
    assert chart["type"] == "line" and len(chart["labels"]) == 30
    assert sum(chart["datasets"][0]["data"]) == 3  # the three redemptions, all in the last 30 days
    assert "loyalty/vendor/chart.umd.js" in html


def test_support_sees_the_queues_but_no_approval_advice_and_no_figures(figures, support_user):
    html = client_for(support_user).get("/admin/").content.decode()
    assert 'id="queue-rollback_approvals"' in html
    assert "You cannot approve a rollback you requested" not in html
    assert "working this queue needs another role" in html
    assert 'id="home-figures"' not in html
    assert "chart.umd.js" not in html
    # The two look-up boxes it can use: members and codes.
    assert 'id="lookup-members"' in html and 'id="lookup-codes"' in html


def test_the_dashboard_is_for_report_readers(figures, support_user, approver_user):
    assert client_for(support_user).get("/admin/dashboard/").status_code == 403
    page = client_for(approver_user).get("/admin/dashboard/?from=2026-03-01&to=2026-03-10")
    assert page.status_code == 200
    html = page.content.decode()
    assert "1 Mar 2026 – 10 Mar 2026" in html
    daily = json.loads(html.split('id="daily-chart-data" type="application/json">')[1].split("</script>")[0])
    assert len(daily["labels"]) == 10
    assert [ds["label"] for ds in daily["datasets"]] == ["Redemptions", "Awards", "Rollbacks", "Code uses"]
    assert "Customer request" in html


def test_a_bad_range_on_the_dashboard_says_so_and_shows_the_default(approver_user):
    page = client_for(approver_user).get("/admin/dashboard/?from=2026-03-10&to=2026-03-01")
    assert page.status_code == 200
    assert "Must not be after" in page.content.decode()


def test_view_site_is_gone(approver_user):
    assert "View site" not in client_for(approver_user).get("/admin/").content.decode()


def test_money_is_shown_with_two_decimals_and_its_currency():
    from decimal import Decimal

    from loyalty.templatetags.insight import money

    assert money(Decimal("307.770000000000"), "EUR") == "307.77 EUR"
    assert money("1234.5", "GBP") == "1,234.50 GBP"
    assert money(None, "EUR") == ""


def test_the_campaign_page_shows_the_discount_with_its_currency(admin_user):
    from promotions import services as promotions

    campaign = promotions.create_campaign(actor=admin_user, name="Spring", kind="fixed_discount", value=5)
    html = client_for(admin_user).get(f"/admin/promotions/campaign/{campaign.pk}/change/").content.decode()
    assert "0.00 EUR" in html


def test_a_preview_shows_points_per_metric_never_one_sum():
    from loyalty.templatetags.insight import points_by_metric

    preview = {"points": 48, "points_by_metric": {"points": 45, "status_credits": 3}}
    assert points_by_metric(preview) == "45 points · 3 status_credits"
    assert points_by_metric({}) == "0 points"


def test_failed_webhook_deliveries_are_a_queue_for_whoever_may_replay_them(admin_user, support_user):
    from loyalty.events import webhooks
    from loyalty.models import Event, WebhookDelivery

    sub, _secret = webhooks.create_subscription(
        url="https://crm.example.com/hook", events=["member.enrolled"], actor=admin_user
    )
    event = Event.objects.create(type="member.enrolled", data={})
    WebhookDelivery.objects.create(
        subscription=sub, event=event, event_type=event.type, status=WebhookDelivery.Status.FAILED, attempts=12
    )
    html = client_for(admin_user).get("/admin/").content.decode()
    assert 'id="queue-failed_deliveries"' in html
    queue = html.split('id="queue-failed_deliveries"')[1].split("</tr>")[0]
    assert 'data-count="1"' in queue
    assert "/admin/loyalty/webhookdelivery/?status__exact=failed" in html
    # Support cannot read the delivery log: no such queue on its home.
    assert 'id="queue-failed_deliveries"' not in client_for(support_user).get("/admin/").content.decode()
