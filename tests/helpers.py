"""Plain helpers shared by the test modules: the API error shape, admin URLs, logins and messages,
and the rule definitions and dates the earning and retro tests build on."""

from __future__ import annotations

import datetime as dt

from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from loyalty.models import PointBalance

BASE = "/api/v1"

FIXED = {"name": "Visit", "metric": "points", "action": "fixed"}
BY_TIER = {
    "name": "Tier share",
    "metric": "points",
    "action": "percent_of_amount",
    "percent_by_tier": {"GOLD": 20, "SILVER": 15, "BRONZE": 10},
}


def d(*args) -> dt.datetime:
    """A UTC datetime: d(2023, 5, 20, 14)."""
    return dt.datetime(*args, tzinfo=dt.UTC)


# --- the API ---------------------------------------------------------------------------------------


def assert_error(response, status, code, field=None):
    """The response is the API's error shape with this status and code (and an error for ``field``)."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "detail", "errors"}, body
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    if field:
        assert field in body["errors"], body


def ok(response, status=200):
    """The response has this status; its JSON body."""
    assert response.status_code == status, response.content
    return response.json()


def balance(member):
    """The member's only point balance."""
    return PointBalance.objects.get(member=member).balance


# --- the admin -------------------------------------------------------------------------------------


def admin_url(name, *args, query=""):
    """The URL of ``admin:<name>`` with ``args``, and ``?query`` when given."""
    return reverse(f"admin:{name}", args=args) + (f"?{query}" if query else "")


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def login(user) -> Client:
    """A test client logged in as ``user``."""
    client = Client()
    client.force_login(user)
    return client
