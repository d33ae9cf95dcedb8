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


def every_admin_page(client: Client, user, *, objects_per_model: int = 3) -> list[str]:
    """The admin pages ``user`` may see: the index, each app's index, and for every registered
    model its list and, for its first ``objects_per_model`` objects (every API key), the change
    page, the history page and each historical version's page."""
    from django.contrib import admin
    from simple_history.admin import SimpleHistoryAdmin

    from loyalty.models import ApiKey

    pages = [reverse("admin:index")]
    apps = set()
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        if not user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
            continue
        apps.add(opts.app_label)
        name = f"admin:{opts.app_label}_{opts.model_name}"
        pages.append(reverse(f"{name}_changelist"))
        queryset = model_admin.get_queryset(client.get(reverse(f"{name}_changelist")).wsgi_request).order_by("pk")
        objects = list(queryset if model is ApiKey else queryset[:objects_per_model])
        for obj in objects:
            pages.append(reverse(f"{name}_change", args=[obj.pk]))
            pages.append(reverse(f"{name}_history", args=[obj.pk]))
            if isinstance(model_admin, SimpleHistoryAdmin) and hasattr(obj, "history"):
                for version in obj.history.values_list("history_id", flat=True):
                    pages.append(reverse(f"{name}_simple_history", args=[obj.pk, version]))
    pages += [reverse("admin:app_list", args=[label]) for label in sorted(apps)]
    return pages
