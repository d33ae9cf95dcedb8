"""Shared fixtures, and only fixtures: helper functions live in ``tests/helpers.py``, factories in
``tests/factories.py`` (see tests/README.md)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from config.celery import app as celery_app
from loyalty import roles, services
from loyalty.kernel import SYSTEM
from loyalty.models import Metric, Tier
from tests.helpers import BrokerSwitch, api_client_for, make_user, require_postgres


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


def _lock_names_its_table(execute, sql, params, many, context):
    """A row lock over a join must say which table it locks (``select_for_update(of=...)``):
    PostgreSQL's bare FOR UPDATE locks a row of every joined table, and a join added by a model's
    default ordering once made every ledger write wait for the one metric row."""
    text = sql.upper() if isinstance(sql, str) else ""
    if " FOR UPDATE" in text and " JOIN " in text and " FOR UPDATE OF " not in text and " FOR NO KEY" not in text:
        raise AssertionError(f"FOR UPDATE over a join without OF locks the joined rows too: {sql[:300]}")
    return execute(sql, params, many, context)


@pytest.fixture(autouse=True)
def _row_locks_name_their_table():
    from django.db import connection

    if connection.vendor != "postgresql":
        yield
        return
    with connection.execute_wrapper(_lock_names_its_table):
        yield


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
    return services.enroll_member(external_id="M-1", email="ann@example.com", name="Ann Example", actor=SYSTEM)


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


@pytest.fixture
def api(integration_user) -> APIClient:
    """An API client authenticated as an Integration user (token auth)."""
    return api_client_for(integration_user)


@pytest.fixture
def support(support_user) -> APIClient:
    """An API client authenticated as the Support agent."""
    return api_client_for(support_user)


@pytest.fixture
def campaign_manager(campaign_manager_user) -> APIClient:
    """An API client authenticated as the Campaign manager."""
    return api_client_for(campaign_manager_user)


@pytest.fixture
def approver(approver_user) -> APIClient:
    """An API client authenticated as the Approver."""
    return api_client_for(approver_user)
