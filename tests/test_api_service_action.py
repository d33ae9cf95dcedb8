"""The kernel's API shapes: ``ServiceAction`` (look up, validate, one service, answer), the
``read_write`` permission class and ``ModelOut`` answers, seen from the outside."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from loyalty.events import webhooks
from loyalty.kernel.api import ModelOut
from loyalty.models import LedgerEntry, Segment
from tests.helpers import BASE, api_client_for, assert_error, make_user


@pytest.mark.django_db
def test_the_object_in_the_url_is_looked_up_before_the_body_is_read(api, member, metric):
    # An unknown member is a 404 whatever the body; a known one with a bad body is a 400.
    assert_error(api.post(f"{BASE}/members/NOPE/adjustments/", {}, format="json"), 404, "not_found")
    r = api.post(f"{BASE}/members/{member.external_id}/adjustments/", {"amount": 0}, format="json")
    assert_error(r, 400, "invalid", "amount")
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_the_answer_has_the_status_its_responses_declare(api, member, metric):
    body = {"metric": "points", "amount": 5, "reason": "x"}
    r = api.post(f"{BASE}/members/{member.external_id}/adjustments/", body, format="json")
    assert r.status_code == 201 and r.json()["amount"] == 5


@pytest.mark.django_db
def test_a_post_without_a_request_body_ignores_what_is_sent():
    boss = make_user("boss-rotate", superuser=True)
    sub, first = webhooks.create_subscription(url="http://127.0.0.1:9/x", events=["*"], actor=boss)
    r = api_client_for(boss).post(f"{BASE}/webhooks/{sub.pk}/rotate-secret", {"secret": "mine"}, format="json")
    assert r.status_code == 200 and r.json()["secret"] not in (first, "mine")


@pytest.mark.django_db
def test_read_write_gives_delete_its_own_permission():
    boss = make_user("boss-hooks", superuser=True)
    sub, _ = webhooks.create_subscription(url="http://127.0.0.1:9/y", events=["*"], actor=boss)
    user = make_user("hook-editor")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_webhooksubscription", "change_webhooksubscription"])
    )
    client = api_client_for(user)
    assert client.get(f"{BASE}/webhooks/{sub.pk}/").status_code == 200
    assert_error(client.delete(f"{BASE}/webhooks/{sub.pk}/"), 403, "permission_denied")
    user.user_permissions.add(Permission.objects.get(codename="delete_webhooksubscription"))
    assert api_client_for(user).delete(f"{BASE}/webhooks/{sub.pk}/").status_code == 204


def test_the_schema_describes_a_view_by_its_own_docstring_never_the_kernel_base():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    # RewardList has no docstring: nothing from ServiceAction's may stand in for one.
    assert "description" not in schema["paths"]["/api/v1/rewards/"]["get"]
    assert schema["paths"]["/api/v1/members/{external_id}/adjustments/"]["post"]["description"].startswith(
        "A support adjustment"
    )


def test_model_answers_name_relations_by_their_natural_key_and_others_by_id():
    class EntryOut(ModelOut):
        class Meta:
            model = LedgerEntry
            fields = ["member", "metric", "actor", "reverses"]

    class SegmentMembersOut(ModelOut):
        class Meta:
            model = Segment
            fields = ["members"]

    fields = EntryOut().fields
    keys = {name: (type(f), getattr(f, "slug_field", None), f.read_only) for name, f in fields.items()}
    assert keys["member"] == (serializers.SlugRelatedField, "external_id", True)
    assert keys["metric"] == (serializers.SlugRelatedField, "code", True)
    assert keys["actor"] == (serializers.SlugRelatedField, "username", True)
    assert keys["reverses"][0] is serializers.PrimaryKeyRelatedField  # a ledger entry has no natural key
    members = SegmentMembersOut().fields["members"]
    assert isinstance(members, serializers.ManyRelatedField) and members.child_relation.slug_field == "external_id"
