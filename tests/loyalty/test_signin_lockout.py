"""The admin sign-in lockout (django-axes): per username and IP, a clear message on the login
page, unlock in the admin, logged; API keys are not affected."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
import time_machine
from axes.models import AccessAttempt
from django.test import Client

from loyalty import services
from loyalty.kernel import SYSTEM
from tests.helpers import BASE, admin_url, login, messages_of

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")

LOGIN = "/admin/login/?next=/admin/"


def sign_in(client: Client, username: str, password: str, ip: str = "192.0.2.10"):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=ip)


def signed_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_twelve_wrong_passwords_then_the_right_one_does_not_sign_in(support_user, caplog):
    client = Client()
    caplog.set_level(logging.WARNING)
    for _ in range(12):
        r = sign_in(client, "sally", "wrong")
        assert r.status_code in (200, 429)
    r = sign_in(client, "sally", "pw-sally")
    assert r.status_code == 429
    text = r.content.decode()
    assert "Too many failed sign-ins for this account from your address" in text
    assert "locked for 15 minutes" in text and 'name="password"' in text  # the admin's login page, with a form
    assert not signed_in(client)
    assert "_auth_user_id" not in client.session
    assert any("locked out" in rec.getMessage().lower() for rec in caplog.records)
    # ...and the lockout ends by itself
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=16), tick=False):
        assert sign_in(client, "sally", "pw-sally").status_code == 302
        assert signed_in(client)


@pytest.mark.django_db
def test_the_lockout_is_per_username_and_ip(support_user, approver_user):
    client = Client()
    for _ in range(5):
        sign_in(client, "sally", "wrong", ip="192.0.2.10")
    assert sign_in(client, "sally", "pw-sally", ip="192.0.2.10").status_code == 429
    # the same user from another address, another user from the same address: not locked
    assert sign_in(Client(), "sally", "pw-sally", ip="198.51.100.20").status_code == 302
    assert sign_in(Client(), "alex", "pw-alex", ip="192.0.2.10").status_code == 302


@pytest.mark.django_db
def test_four_failures_then_success_resets_the_count(support_user):
    client = Client()
    for _ in range(4):
        sign_in(client, "sally", "wrong")
    assert sign_in(client, "sally", "pw-sally").status_code == 302
    client.logout()
    for _ in range(4):
        sign_in(client, "sally", "wrong")
    assert sign_in(client, "sally", "pw-sally").status_code == 302


@pytest.mark.django_db
def test_an_administrator_unlocks_on_the_access_attempts_screen(support_user, admin_user, auditor_user, caplog):
    client = Client()
    for _ in range(6):
        sign_in(client, "sally", "wrong")
    [attempt] = AccessAttempt.objects.all()
    assert attempt.username == "sally" and attempt.ip_address == "192.0.2.10"
    changelist = admin_url("axes_accessattempt_changelist")
    auditor = login(auditor_user)
    listing = auditor.get(changelist)
    assert listing.status_code == 200 and "sally" in listing.content.decode()
    assert listing.context["action_form"] is None  # auditors see attempts, cannot unlock
    caplog.set_level(logging.WARNING)
    done = login(admin_user).post(
        changelist, {"action": "unlock_selected", "_selected_action": [attempt.pk]}, follow=True
    )
    assert "Unlocked 1 sign-in lockout." in messages_of(done)
    assert not AccessAttempt.objects.exists()
    assert any("lockout lifted for 'sally'" in rec.getMessage() for rec in caplog.records)
    assert sign_in(client, "sally", "pw-sally").status_code == 302


@pytest.mark.django_db
def test_api_keys_are_not_affected_by_a_sign_in_lockout(integration_user, member):
    key = services.create_api_key(owner=integration_user, name="pos", actor=SYSTEM).key
    for _ in range(12):
        sign_in(Client(), "pos", "wrong", ip="127.0.0.1")
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get(f"{BASE}/members/", REMOTE_ADDR="127.0.0.1").status_code == 200
