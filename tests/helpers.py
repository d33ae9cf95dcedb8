"""Plain helpers shared by the test modules (fixtures live in ``tests/conftest.py``, factories in
``tests/factories.py``): the rules for tests that need real services (PostgreSQL, Redis, Chromium),
the broker switch, users with roles and API clients, the API error shape, admin URLs, logins and
messages, and the rule definitions and dates the earning and retro tests build on.

A test that needs PostgreSQL, Redis or Chromium skips with a reason when the service is not there,
except under CI=true, where a missing service is a failure.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from config.celery import app as celery_app
from loyalty import roles, services
from loyalty.models import PointBalance

# --- real services: skip locally, fail in CI -------------------------------------------------------

IN_CI = os.environ.get("CI", "").lower() == "true"


def missing_service(reason: str) -> None:
    """Skip locally; fail in CI, where every service must be present."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def require_postgres() -> None:
    if connection.vendor != "postgresql":
        if os.environ.get("REQUIRE_POSTGRES", "").lower() == "true":
            pytest.fail("REQUIRE_POSTGRES=true but DATABASE_URL is not PostgreSQL", pytrace=False)
        pytest.skip("runs in the PostgreSQL pass (set DATABASE_URL=postgres://...)")


def redis_url() -> str:
    url = os.environ.get("CELERY_BROKER_URL") or os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        missing_service(f"Redis is not reachable at {url}: {exc}")
    return url


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.path.exists(browser) and os.path.exists(driver)):
        missing_service("Chromium is not installed (apt-get install chromium chromium-driver)")
    return browser, driver


# --- the broker -------------------------------------------------------------------------------------

DEAD_BROKER = "redis://127.0.0.1:6390/0"  # nothing listens there: "the broker is down"


class BrokerSwitch:
    """``broker(url)`` points this process at another broker, publishing instead of running inline;
    ``broker.inline()`` runs tasks here again (the broker "is back", as far as a test without a
    worker can tell); ``broker.restore()`` puts everything back. Celery prefers the
    CELERY_BROKER_URL environment variable to its configuration, so both are switched."""

    def __init__(self):
        self.saved = celery_app.conf.broker_url, celery_app.conf.task_always_eager
        self.saved_env = os.environ.get("CELERY_BROKER_URL")

    def __call__(self, url: str) -> None:
        os.environ["CELERY_BROKER_URL"] = url
        celery_app.conf.broker_url = url
        celery_app.conf.task_always_eager = False
        celery_app.amqp._producer_pool = None  # the pool of publishing connections is per broker URL

    def inline(self) -> None:
        from loyalty import outbox

        celery_app.conf.task_always_eager = True
        outbox.breaker.close()

    def restore(self) -> None:
        if self.saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = self.saved_env
        celery_app.conf.broker_url, celery_app.conf.task_always_eager = self.saved
        celery_app.amqp._producer_pool = None


# --- users and API clients -------------------------------------------------------------------------


def make_user(username: str, *role_names: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username, email=f"{username}@example.com")
    user.is_staff = bool(set(role_names) & set(roles.STAFF_ROLES)) or superuser
    user.is_superuser = superuser
    user.save()
    for name in role_names:
        user.groups.add(Group.objects.get(name=name))
    return user


def api_client_for(user: User) -> APIClient:
    """An API client sending a new API key of ``user`` (``Authorization: Token <key>``)."""
    client = APIClient()
    key = services.create_api_key(owner=user, name=f"test key of {user.username}", actor=None).key
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.api_key = key
    return client


BASE = "/api/v1"

# --- rules and dates -------------------------------------------------------------------------------

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
