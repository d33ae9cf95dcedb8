"""The OpenAPI schema tells the truth: nullable fields are nullable, every operation lists its
error answers in the error shape, and a URL no route matches is a JSON 404 under /api/."""

from __future__ import annotations

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from loyalty.api.schema import source_can_be_null
from promotions.api.serializers import CodeOut
from tests.helpers import assert_error


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def item_properties(schema, path: str) -> dict:
    ref = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    item = page["properties"]["results"]["items"]["$ref"].rsplit("/", 1)[1]
    return schema["components"]["schemas"][item]["properties"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/campaigns/", "metric"),
        ("/api/v1/codes/", "assigned_member"),
        ("/api/v1/redemptions/", "decided_by"),
        ("/api/v1/retro-claims/", "ledger_entry"),
        ("/api/v1/rule-sets/", "previous"),
        ("/api/v1/transactions/", "member"),
    ],
)
def test_fields_that_come_back_null_are_nullable(schema, path, field):
    assert item_properties(schema, path)[field].get("nullable") is True


def test_nullability_follows_the_model_path_of_the_source():
    fields = CodeOut().fields
    assert source_can_be_null(fields["assigned_member"])  # assigned_member.external_id: the FK is nullable
    assert not source_can_be_null(fields["code"])
    assert not source_can_be_null(fields["campaign"])  # a required FK

    class Plain(serializers.Serializer):
        x = serializers.CharField()

    assert not source_can_be_null(Plain().fields["x"])  # no model: the declaration decides


def test_every_operation_documents_its_error_answers(schema):
    error_ref = "#/components/schemas/ErrorOut"
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            expected = {"400", "401", "403", "429"}
            if "{" in path:
                expected.add("404")
            if method != "get":
                expected |= {"409", "422"}
            assert expected <= set(responses), (method, path, sorted(responses))
            for code in expected:
                if code in responses and code.startswith("4") and "content" in responses[code]:
                    content = responses[code]["content"]
                    if "application/json" in content and code not in ("200", "201", "202"):
                        assert content["application/json"]["schema"]["$ref"] == error_ref, (method, path, code)


@pytest.mark.django_db
def test_an_api_url_no_route_matches_is_a_json_404():
    client = Client()
    assert_error(client.get("/api/v1/campaigns/not-a-number/"), 404, "not_found")
    assert_error(client.get("/api/v1/no-such-thing/"), 404, "not_found")
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


@pytest.mark.slow
@pytest.mark.django_db
def test_the_schema_and_docs_need_the_auditor_or_integration_role(
    integration_user, auditor_user, support_user, campaign_manager_user, admin_user
):
    from tests.helpers import api_client_for, login

    assert Client().get("/api/schema/").status_code == 401
    assert Client().get("/api/docs/").status_code == 401
    for user in (support_user, campaign_manager_user):
        assert api_client_for(user).get("/api/schema/").status_code == 403
        assert login(user).get("/api/docs/").status_code == 403
    for user in (integration_user, auditor_user, admin_user):
        r = api_client_for(user).get("/api/schema/")
        assert r.status_code == 200 and r.content.startswith(b"openapi: 3.")
    assert login(auditor_user).get("/api/docs/").status_code == 200
