"""API keys: shown once, stored as a digest, listed, revoked; wrong, revoked and expired keys are
401 in the error shape; no admin page shows a key, to a superuser or an auditor."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

from loyalty import services
from loyalty.exceptions import InvalidInput, InvalidTransition, PermissionRequired
from loyalty.kernel import SYSTEM
from loyalty.models import ApiKey
from tests.helpers import BASE, admin_url, api_client_for, assert_error, every_admin_page, login, messages_of

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


def tables_containing(*secrets: str) -> list[str]:
    """Every table with a row in which one of ``secrets`` appears (the whole database is read)."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            text = repr(cursor.fetchall())
            if any(secret in text for secret in secrets):
                found.append(table)
    return found


def key_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def create_key_with_command(username: str, *args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", username, *args, stdout=out, stderr=err)
    return out.getvalue().strip()


@pytest.mark.django_db
def test_a_key_from_the_command_works_and_only_its_digest_is_stored(integration_user, member):
    key = create_key_with_command("pos", "--name", "POS store 42", "--expires-in-days", "30")
    assert key.startswith("lk_") and len(key) == 43
    r = key_client(key).get(f"{BASE}/members/{member.external_id}/")
    assert r.status_code == 200, r.content
    api_key = ApiKey.objects.get()
    assert api_key.name == "POS store 42" and api_key.owner == integration_user
    assert api_key.digest == hashlib.sha256(key.encode()).hexdigest()
    assert api_key.prefix == key[:10] and api_key.last_used_at is not None
    assert 29 <= (api_key.expires_at - api_key.created_at).days <= 30
    stored = [str(v) for v in ApiKey.objects.values().get().values()]
    stored += [str(v) for row in ApiKey.history.values() for v in row.values()]
    assert not any(key in v or key[10:] in v for v in stored)


@pytest.mark.django_db
def test_the_command_refuses_unknown_users_and_bad_expiries(integration_user):
    with pytest.raises(CommandError, match="No user named"):
        create_key_with_command("nobody")
    with pytest.raises(CommandError, match="1 to 3650 days"):
        create_key_with_command("pos", "--expires-in-days", "0")
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_wrong_revoked_expired_and_inactive_keys_are_401(integration_user, admin_user, member):
    path = f"{BASE}/members/"
    assert_error(key_client("lk_" + "x" * 40).get(path), 401, "authentication_failed")
    assert_error(key_client("").get(path), 401, "authentication_failed")  # "Token " and nothing
    assert_error(APIClient().get(path), 401, "not_authenticated")

    revoked = services.create_api_key(owner=integration_user, name="old till", actor=SYSTEM)
    assert key_client(revoked.key).get(path).status_code == 200
    services.revoke_api_key(api_key=revoked.api_key, actor=admin_user, reason="Till stolen")
    r = key_client(revoked.key).get(path)
    assert_error(r, 401, "authentication_failed")
    assert "revoked" in r.json()["detail"]
    assert r["WWW-Authenticate"] == "Token"

    expiring = services.create_api_key(owner=integration_user, name="trial", expires_in_days=1, actor=SYSTEM)
    assert key_client(expiring.key).get(path).status_code == 200
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=1, seconds=1), tick=False):
        assert_error(key_client(expiring.key).get(path), 401, "authentication_failed")

    live = services.create_api_key(owner=integration_user, name="live", actor=SYSTEM)
    integration_user.is_active = False
    integration_user.save()
    assert_error(key_client(live.key).get(path), 401, "authentication_failed")


@pytest.mark.django_db
def test_last_used_is_written_at_most_once_a_minute(integration_user, member):
    created = services.create_api_key(owner=integration_user, name="pos", actor=SYSTEM)
    client = key_client(created.key)
    start = dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        assert client.get(f"{BASE}/members/").status_code == 200
    with time_machine.travel(start + dt.timedelta(seconds=59), tick=False):
        assert client.get(f"{BASE}/members/").status_code == 200
    created.api_key.refresh_from_db()
    assert created.api_key.last_used_at == start
    with time_machine.travel(start + dt.timedelta(seconds=61), tick=False):
        assert client.get(f"{BASE}/members/").status_code == 200
    created.api_key.refresh_from_db()
    assert created.api_key.last_used_at == start + dt.timedelta(seconds=61)


@pytest.mark.django_db
def test_revoking_needs_the_permission_and_a_reason_and_happens_once(integration_user, auditor_user, admin_user):
    created = services.create_api_key(owner=integration_user, name="pos", actor=SYSTEM)
    with pytest.raises(PermissionRequired):
        services.revoke_api_key(api_key=created.api_key, actor=auditor_user, reason="x")
    with pytest.raises(PermissionRequired):
        services.create_api_key(owner=integration_user, name="mine", actor=auditor_user)
    with pytest.raises(InvalidInput):  # a blank reason
        services.revoke_api_key(api_key=created.api_key, actor=admin_user, reason=" ")
    services.revoke_api_key(api_key=created.api_key, actor=admin_user, reason="Rotated")
    with pytest.raises(InvalidTransition):
        services.revoke_api_key(api_key=created.api_key, actor=admin_user, reason="again")
    key = ApiKey.objects.get()
    assert (key.revoked_by, key.revoke_reason, key.status) == (admin_user, "Rotated", "revoked")
    latest = key.history.order_by("-history_id").first()
    assert latest.history_user == admin_user and latest.history_change_reason == "Revoked: Rotated"


def _create_in_admin(client, owner) -> str:
    page = client.post(admin_url("loyalty_apikey_add"), {"owner": owner.pk, "name": "Checkout", "expires_in_days": ""})
    assert page.status_code == 200, page.content
    assert page["Cache-Control"].count("no-store")
    return page.context["key"]


@pytest.mark.slow
@pytest.mark.django_db
def test_a_key_made_in_the_admin_works_and_no_admin_page_shows_it(admin_user, auditor_user, integration_user, member):
    client = login(admin_user)
    key = _create_in_admin(client, integration_user)
    assert key.startswith("lk_")
    assert key_client(key).get(f"{BASE}/members/").status_code == 200
    # revoke another key (history with a reason) so that revoked keys are on the pages too
    other = _create_in_admin(client, integration_user)
    client.post(
        admin_url("loyalty_apikey_revoke", ApiKey.objects.get(prefix=other[:10]).pk), {"reason": "Rotated by ops"}
    )
    assert key_client(other).get(f"{BASE}/members/").status_code == 401
    secret_parts = {key, key[10:], other, other[10:]}
    assert tables_containing(*secret_parts) == []  # not in a session, a log entry or a history row
    for user in (admin_user, auditor_user):
        viewer = login(user)
        pages = every_admin_page(viewer, user)
        assert admin_url("loyalty_apikey_changelist") in pages
        assert sum("/loyalty/apikey/" in p for p in pages) >= 7  # the list, 2 keys × (page, history, versions)
        for path in pages:
            r = viewer.get(path, follow=True)  # program settings: the list redirects to its one row
            assert r.status_code == 200, (path, r.status_code)
            text = r.content.decode()
            assert not any(part in text for part in secret_parts), f"{user.username} sees a key on {path}"


@pytest.mark.django_db
def test_the_admin_list_shows_name_prefix_owner_dates_and_status(admin_user, integration_user):
    fresh = services.create_api_key(owner=integration_user, name="POS 1", expires_in_days=5, actor=SYSTEM)
    services.create_api_key(owner=integration_user, name="POS 2", actor=SYSTEM)
    services.revoke_api_key(
        api_key=services.create_api_key(owner=integration_user, name="POS 3", actor=SYSTEM).api_key,
        actor=admin_user,
        reason="Lost",
    )
    client = login(admin_user)
    page = client.get(admin_url("loyalty_apikey_changelist"))
    text = page.content.decode()
    for header in ("Name", "Prefix", "Owner", "Created at", "Last used at", "Expires at", "Status"):
        assert header in text, header
    assert f"{fresh.api_key.prefix}…" in text and "Revoked" in text and "Active" in text
    revoked_only = client.get(admin_url("loyalty_apikey_changelist", query="status=revoked"))
    assert [k.name for k in revoked_only.context["cl"].result_list] == ["POS 3"]
    # no add/change form for the stored fields: the key's page is read-only
    assert "digest" not in client.get(admin_url("loyalty_apikey_change", fresh.api_key.pk)).content.decode()


@pytest.mark.django_db
def test_bulk_revoke_asks_for_a_reason_and_auditors_cannot_revoke_or_create(admin_user, auditor_user, integration_user):
    keys = [services.create_api_key(owner=integration_user, name=f"k{i}", actor=SYSTEM) for i in range(2)]
    client = login(admin_user)
    changelist = admin_url("loyalty_apikey_changelist")
    selected = {"action": "revoke_selected", "_selected_action": [k.api_key.pk for k in keys]}
    page = client.post(changelist, selected)
    assert page.status_code == 200 and b"revoke-api-key-form" in page.content
    assert not ApiKey.objects.filter(revoked_at__isnull=False).exists()
    done = client.post(changelist, {**selected, "apply": "1", "reason": "Integration retired"}, follow=True)
    assert "Revoked 2 API keys." in messages_of(done)
    assert set(ApiKey.objects.values_list("revoke_reason", flat=True)) == {"Integration retired"}

    auditor = login(auditor_user)
    listing = auditor.get(changelist)
    assert listing.status_code == 200 and listing.context["action_form"] is None  # no actions at all
    live = services.create_api_key(owner=integration_user, name="live", actor=SYSTEM).api_key
    auditor.post(changelist, {"action": "revoke_selected", "_selected_action": [live.pk], "apply": "1", "reason": "x"})
    live.refresh_from_db()
    assert live.revoked_at is None
    assert auditor.get(admin_url("loyalty_apikey_add")).status_code == 403
    assert auditor.get(admin_url("loyalty_apikey_revoke", keys[0].api_key.pk)).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_existing_drf_tokens_become_digests_and_the_plaintext_table_is_dropped(integration_user, member):
    """Migration loyalty.0010 on a database that had rest_framework.authtoken: the old key keeps
    working (expiring in 30 days), and no table holds it in plaintext any more."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("loyalty.migrations.0010_drf_tokens_to_api_keys")
    created_type = "timestamp with time zone" if connection.vendor == "postgresql" else "datetime"
    old_key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE authtoken_token ({connection.ops.quote_name('key')} varchar(40) PRIMARY KEY, "
            f"created {created_type} NOT NULL, user_id integer NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)",
            [old_key, dt.datetime(2024, 5, 1, tzinfo=dt.UTC), integration_user.pk],
        )
    with connection.schema_editor() as editor:
        migration.import_drf_tokens(apps, editor)
    assert "authtoken_token" not in connection.introspection.table_names()
    migrated = ApiKey.objects.get()
    assert migrated.owner == integration_user and migrated.prefix == old_key[:7]
    assert migrated.created_at == dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    assert 29 <= (migrated.expires_at - dt.datetime.now(dt.UTC)).days <= 30
    assert key_client(old_key).get(f"{BASE}/members/").status_code == 200


@pytest.mark.slow
@pytest.mark.django_db
def test_seed_demo_prints_a_working_integration_key(settings):
    settings.DEBUG = True
    out = io.StringIO()
    call_command("seed_demo", members=2, stdout=out)
    line = next(line for line in out.getvalue().splitlines() if line.startswith("API key of 'integration': "))
    key = line.split(": ", 1)[1].split()[0]
    assert key_client(key).get(f"{BASE}/members/").status_code == 200
    # a second run prints a new key and revokes the first: one live demo key
    out = io.StringIO()
    call_command("seed_demo", members=2, stdout=out)
    line = next(line for line in out.getvalue().splitlines() if line.startswith("API key of 'integration': "))
    second = line.split(": ", 1)[1].split()[0]
    assert second != key and key_client(second).get(f"{BASE}/members/").status_code == 200
    assert key_client(key).get(f"{BASE}/members/").status_code == 401
    assert ApiKey.objects.filter(name="Demo integration key", revoked_at__isnull=True).count() == 1


@pytest.mark.django_db
def test_api_client_for_uses_a_real_key(integration_user):
    client = api_client_for(integration_user)
    assert ApiKey.objects.filter(digest=hashlib.sha256(client.api_key.encode()).hexdigest()).exists()
