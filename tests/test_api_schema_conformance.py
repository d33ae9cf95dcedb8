"""Schemathesis against the API on seeded demo data: every operation, a few generated requests
each (valid and invalid ones), authenticated with a superuser's API key. No answer may be a
server error, and every answer must be what the schema says: a documented status code, its
content type, and a body that matches the response schema (nulls marked nullable, no field
missing).

Bounded and repeatable: MAX_EXAMPLES per operation and generation mode, derandomized (a fixed
seed), no example database, no shrinking. It runs through the WSGI application in this process
(schemathesis' Django/WSGI transport), so it sees the test database and its transaction.
"""

from __future__ import annotations

import io

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from loyalty import services
from loyalty.kernel import SYSTEM
from tests.helpers import make_user

MAX_EXAMPLES = 3
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


@pytest.fixture
def keep_test_connection():
    """Requests through the plain WSGI handler would close the database connection when they
    end (it is inside the test's transaction); Django's test client switches that off the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_key(db, settings, keep_test_connection):
    settings.DEBUG = True  # seed_demo's guard; the app's behaviour is the same
    call_command("seed_demo", members=4, stdout=io.StringIO())
    settings.DEBUG = False
    root = make_user("fuzz-root", superuser=True)
    return services.create_api_key(owner=root, name="schemathesis", actor=SYSTEM).key


def load_schema(api_key: str):
    auth = {"Authorization": f"Token {api_key}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler(), headers=auth)
    schema.config.generation.update(deterministic=True, no_shrink=True, database="none")
    return schema


def run_operation(operation, mode: GenerationMode, api_key: str) -> list[str]:
    """Up to MAX_EXAMPLES generated requests for one operation; the failures, as text."""
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        try:
            case.call_and_validate(headers={"Authorization": f"Token {api_key}"}, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # every failure of every operation, not just the first
            failures.append(f"{mode.value} {operation.label}: {exc}")

    try:
        check()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters or body)
        assert mode is GenerationMode.NEGATIVE, operation.label
    return failures


@pytest.mark.slow
@pytest.mark.django_db
def test_every_operation_answers_as_its_schema_says(api_key):
    schema = load_schema(api_key)
    failures = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += run_operation(operation, mode, api_key)
    assert operations >= 50
    assert not failures, "\n\n".join(failures)
