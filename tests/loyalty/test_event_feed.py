"""GET /events/?after=<id>: the events as a feed with a cursor, oldest first, paginated, filtered."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from loyalty import roles
from loyalty import services as loyalty
from loyalty.events import emit
from loyalty.kernel import SYSTEM
from loyalty.models import Event
from tests.helpers import api_client_for, make_user


@pytest.fixture
def crm(db):
    return api_client_for(make_user("crm", roles.INTEGRATION))


@pytest.fixture
def events(member, tiers):
    other = loyalty.enroll_member(external_id="M-2", email="bob@example.com", actor=SYSTEM)
    Event.objects.all().delete()  # the enrolments' own events: the feed below is just these
    with transaction.atomic():
        return [
            emit("member.enrolled", member),
            emit("member.enrolled", other),
            emit("member.tier_changed", member),
            emit("member.tier_changed", other),
            emit("member.enrolled", member),
        ]


def ids(response):
    return [e["id"] for e in response.json()["results"]]


def test_the_feed_pages_oldest_first_with_a_cursor(crm, events):
    first = crm.get("/api/v1/events/?page_size=2")
    assert first.status_code == 200 and ids(first) == [e.pk for e in events[:2]]
    body = first.json()
    assert body["cursor"] == events[1].pk and f"after={events[1].pk}" in body["next"]
    second = crm.get(body["next"])
    assert ids(second) == [e.pk for e in events[2:4]]
    third = crm.get(second.json()["next"])
    assert ids(third) == [events[4].pk] and third.json()["next"] is None
    caught_up = crm.get(f"/api/v1/events/?after={third.json()['cursor']}")
    assert ids(caught_up) == [] and caught_up.json()["cursor"] == events[4].pk
    row = first.json()["results"][0]
    assert (row["type"], row["data"]["member"], row["data"]["external_id"]) == ("member.enrolled", "M-1", "M-1")
    assert set(row) == {"id", "type", "created_at", "data"}


def test_the_feed_filters_by_type_and_member(crm, events):
    assert ids(crm.get("/api/v1/events/?type=member.tier_changed")) == [events[2].pk, events[3].pk]
    assert ids(crm.get("/api/v1/events/?member=M-2")) == [events[1].pk, events[3].pk]
    both = crm.get("/api/v1/events/?member=M-1&type=member.enrolled&type=member.tier_changed")
    assert ids(both) == [events[0].pk, events[2].pk, events[4].pk]


@pytest.mark.parametrize("query", ["after=x", "after=-1", "page_size=0", "page_size=501", "type=member.exploded"])
def test_bad_feed_queries_are_a_400(crm, events, query):
    response = crm.get(f"/api/v1/events/?{query}")
    assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_the_feed_holds_back_events_younger_than_the_settle_time(crm, events, settings):
    settings.EVENTS_FEED_SETTLE_SECONDS = 60
    Event.objects.filter(pk=events[0].pk).update(created_at=timezone.now() - dt.timedelta(minutes=5))
    assert ids(crm.get("/api/v1/events/")) == [events[0].pk]


def test_the_feed_needs_the_permission(db, events):
    assert api_client_for(make_user("nobody")).get("/api/v1/events/").status_code == 403
    assert api_client_for(make_user("sue", roles.SUPPORT_AGENT)).get("/api/v1/events/").status_code == 200
