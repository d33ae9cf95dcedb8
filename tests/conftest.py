"""Shared fixtures and the rules for tests that need real services.

A test that needs PostgreSQL, Redis or Chromium skips with a reason when the service is not
there, except under CI=true, where a missing service is a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from rest_framework.test import APIClient

from config.celery import app as celery_app
from loyalty import roles, services
from loyalty.kernel import SYSTEM
from loyalty.models import Metric, Tier

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


@pytest.fixture
def postgres_only():
    require_postgres()


@pytest.fixture(autouse=True)
def eager_celery(request):
    """Tasks run inline in tests unless a test asks for the real worker."""
    if request.node.get_closest_marker("real_worker"):
        yield
        return
    old = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = old


@pytest.fixture(autouse=True)
def _outbox_breaker_closed():
    """A broker failure in one test must not make the next one skip publishing on commit."""
    from loyalty import outbox

    outbox.breaker.close()
    yield
    outbox.breaker.close()


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


@pytest.fixture
def broker():
    switch = BrokerSwitch()
    yield switch
    switch.restore()


@pytest.fixture(autouse=True)
def _no_throttle_state(settings):
    from django.core.cache import cache

    cache.clear()


# --- domain fixtures ------------------------------------------------------------------------


@pytest.fixture
def metric(db) -> Metric:
    return Metric.objects.create(code="points", name="Points", expiry_days=365)


@pytest.fixture
def tiers(db) -> dict[str, Tier]:
    return {
        t.code: t
        for t in [
            Tier.objects.create(code="BRONZE", name="Bronze", rank=1),
            Tier.objects.create(code="SILVER", name="Silver", rank=2, spend_threshold=500),
            Tier.objects.create(code="GOLD", name="Gold", rank=3, spend_threshold=2000),
        ]
    }


@pytest.fixture
def member(db, tiers):
    return services.enroll_member(external_id="M-1", email="ann@example.com", name="Ann Example")


def make_user(username: str, *role_names: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username, email=f"{username}@example.com")
    user.is_staff = bool(set(role_names) & set(roles.STAFF_ROLES)) or superuser
    user.is_superuser = superuser
    user.save()
    for name in role_names:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def support_user(db) -> User:
    return make_user("sally", roles.SUPPORT_AGENT)


@pytest.fixture
def approver_user(db) -> User:
    return make_user("alex", roles.APPROVER)


@pytest.fixture
def auditor_user(db) -> User:
    return make_user("audrey", roles.AUDITOR)


@pytest.fixture
def campaign_manager_user(db) -> User:
    return make_user("carl", roles.CAMPAIGN_MANAGER)


@pytest.fixture
def integration_user(db) -> User:
    return make_user("pos", roles.INTEGRATION)


@pytest.fixture
def admin_user(db) -> User:
    return make_user("root", superuser=True)


def api_client_for(user: User) -> APIClient:
    """An API client sending a new API key of ``user`` (``Authorization: Token <key>``)."""
    client = APIClient()
    key = services.create_api_key(owner=user, name=f"test key of {user.username}", actor=SYSTEM).key
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.api_key = key
    return client


@pytest.fixture
def api(integration_user) -> APIClient:
    """An API client authenticated as an Integration user (token auth)."""
    return api_client_for(integration_user)


@pytest.fixture
def support(support_user) -> APIClient:
    """An API client authenticated as the Support agent."""
    return api_client_for(support_user)


@pytest.fixture
def approver(approver_user) -> APIClient:
    """An API client authenticated as the Approver."""
    return api_client_for(approver_user)
