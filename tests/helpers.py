"""Plain helpers shared by the test modules (fixtures live in ``tests/conftest.py``, factories in
``tests/factories.py``): the rules for tests that need real services (PostgreSQL, Redis, Chromium),
the broker switch, users with roles and API clients, the API error shape, admin URLs, logins and
messages, and the rule definitions and dates the earning and retro tests build on.

A test that needs PostgreSQL, Redis or Chromium skips with a reason when the service is not there,
except under CI=true, where a missing service is a failure.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils.html import strip_tags
from rest_framework.test import APIClient

from config.celery import app as celery_app
from loyalty import roles, services
from loyalty.kernel import SYSTEM
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
    key = services.create_api_key(owner=user, name=f"test key of {user.username}", actor=SYSTEM).key
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.api_key = key
    return client


# --- data shared by a group of tests -----------------------------------------------------------------


@contextmanager
def shared_transaction(django_db_blocker) -> Iterator[None]:
    """An outer transaction around a group of tests (a class- or module-scoped fixture), rolled back
    after the last one: what is written inside is made once for the group, like Django's
    ``TestCase.setUpTestData``. Each test still runs in its own savepoint (pytest-django's ``db``),
    so what a test writes is undone before the next one and the group's data stays as it was.

    Keep such a fixture to a class (or a module of its own): a module-scoped one stays set up for
    every later test of the module, including those that did not ask for it."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        # As Django's TestCase marks its own outer blocks: durable service transactions may run inside.
        atomic._from_testcase = True
        atomic.__enter__()
        try:
            yield
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


def seed_demo(members: int) -> str:
    """``manage.py seed_demo --members N --force`` (no DEBUG needed); its output."""
    out = io.StringIO()
    call_command("seed_demo", members=members, force=True, stdout=out)
    return out.getvalue()


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
    """The messages as a user reads them (a message may link to what it names)."""
    return [html.unescape(strip_tags(str(m))) for m in get_messages(response.wsgi_request)]


def message_links(response) -> list[str]:
    """Every link target in the response's messages."""
    return [href for m in get_messages(response.wsgi_request) for href in re.findall(r'href="([^"]+)"', str(m))]


def login(user) -> Client:
    """A test client logged in as ``user``."""
    client = Client()
    client.force_login(user)
    return client


def every_admin_page(client: Client, user, *, objects_per_model: int = 1) -> list[str]:
    """The admin pages ``user`` may see: the index, each app's index, and for every registered
    model its list and, for its first ``objects_per_model`` objects, the change page, the history
    page and the first historical version's page: every page *kind* once per model. API keys, whose
    pages must never show a key, are opened all of them, with every version."""
    from django.contrib import admin
    from django.test import RequestFactory
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
        changelist = reverse(f"{name}_changelist")
        pages.append(changelist)
        request = RequestFactory().get(changelist)
        request.user = user
        queryset = model_admin.get_queryset(request).order_by("pk")
        every = model is ApiKey
        for obj in queryset if every else queryset[:objects_per_model]:
            pages.append(reverse(f"{name}_change", args=[obj.pk]))
            pages.append(reverse(f"{name}_history", args=[obj.pk]))
            if isinstance(model_admin, SimpleHistoryAdmin) and hasattr(obj, "history"):
                versions = obj.history.order_by("history_id").values_list("history_id", flat=True)
                for version in versions if every else versions[:1]:
                    pages.append(reverse(f"{name}_simple_history", args=[obj.pk, version]))
    pages += [reverse("admin:app_list", args=[label]) for label in sorted(apps)]
    return pages
