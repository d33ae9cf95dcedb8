"""Events and their webhook deliveries are purged after EVENT_RETENTION_DAYS (beat purge-events)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from loyalty import tasks
from loyalty.events import retention
from loyalty.models import Event, WebhookDelivery, WebhookSubscription
from tests.helpers import api_client_for, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(member):
    """Seven events a day apart, 99½ to 93½ days old, then three recent ones; each delivered once.
    (Ids grow with time, as ``emit`` writes them: the member's own enrolment event goes first.)"""
    Event.objects.all().delete()
    sub = WebhookSubscription.objects.create(url="https://crm.example.com/hook", events=["*"], secret="s")
    now = timezone.now()
    ages = [100, 99, 98, 97, 96, 95, 94, 10, 1, 0.5]
    events = [
        Event.objects.create(type="member.enrolled", member=member, created_at=now - dt.timedelta(days=age, hours=-12))
        for age in ages
    ]
    for event in events:
        WebhookDelivery.objects.create(
            subscription=sub, event=event, event_type=event.type, status=WebhookDelivery.Status.DELIVERED
        )
    return events


def test_events_older_than_the_retention_go_with_their_deliveries_in_batches(history, settings):
    settings.EVENT_RETENTION_DAYS = 96
    assert retention.purge_events(batch=2) == 4  # 99½, 98½, 97½ and 96½ days old; 95½ is not
    kept = list(Event.objects.order_by("id"))
    assert kept == history[4:]
    assert set(WebhookDelivery.objects.values_list("event_id", flat=True)) == {e.pk for e in kept}
    assert retention.purge_events(batch=2) == 0  # nothing more to do


def test_the_default_keeps_ninety_days_and_the_beat_task_runs_it(history):
    assert tasks.purge_events() == 7
    assert Event.objects.count() == 3 and WebhookDelivery.objects.count() == 3


def test_zero_keeps_every_event(history, settings):
    settings.EVENT_RETENTION_DAYS = 0
    assert retention.purge_events() == 0
    assert Event.objects.count() == 10


def test_the_feed_goes_on_from_an_old_cursor_after_a_purge(history, settings):
    settings.EVENT_RETENTION_DAYS = 90
    settings.EVENTS_FEED_SETTLE_SECONDS = 0
    retention.purge_events()
    client = api_client_for(make_user("crm", superuser=True))
    body = client.get(f"/api/v1/events/?after={history[0].pk}").json()
    assert [e["id"] for e in body["results"]] == [e.pk for e in history[7:]]
