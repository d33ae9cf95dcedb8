"""Webhooks in process: signed deliveries to a real HTTP receiver in a thread, retried with backoff
until a 2xx, the SSRF guard, the 10-second cut-off, replays, and the subscriptions API.

Deliveries run inline here (the embedded mode); tests/integration/test_webhooks_worker.py has a
real worker on Redis and a receiver that is down for a minute.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.db import transaction

from loyalty import outbox, roles
from loyalty.events import emit, webhooks
from loyalty.kernel import unit_of_work
from loyalty.models import Event, Member, OutboxMessage, WebhookDelivery, WebhookSubscription
from tests.helpers import admin_url, api_client_for, login, make_user, messages_of
from tests.webhook_receiver import Receiver

Status = WebhookDelivery.Status


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """A transaction that commits (the test's own stays open): its on_commit hooks run at the end.
    A unit of work, so that an outer service called inside joins it as a request's would."""

    @contextlib.contextmanager
    def block():
        with django_capture_on_commit_callbacks(execute=True), unit_of_work("test: a transaction that commits"):
            yield

    return block


@pytest.fixture
def boss(db):
    return make_user("boss", superuser=True)


def subscribe(boss, url, events=("member.enrolled",)):
    return webhooks.create_subscription(url=url, events=list(events), actor=boss)


def test_a_receiver_answering_500_503_then_200_gets_three_signed_attempts_of_one_event(
    member, receiver, boss, commit, settings
):
    settings.WEBHOOK_BACKOFF_SECONDS = 0  # each retry due at once (the schedule is tested below)
    receiver.codes = [500, 503]
    sub, secret = subscribe(boss, receiver.url)
    with commit():
        event = emit("member.enrolled", member)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == Status.PENDING and delivery.attempts == 1 and delivery.last_status_code == 500

    webhooks.deliver_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.PENDING, 2, 503)
    webhooks.deliver_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.DELIVERED, 3, 200)
    assert OutboxMessage.objects.get(pk=delivery.outbox_message_id).status == OutboxMessage.Status.DONE

    assert [r.status for r in receiver.received] == [500, 503, 200]
    for request in receiver.received:
        assert request.headers["Loyalty-Event-Id"] == str(event.pk)
        assert webhooks.verify(secret, request.headers["Loyalty-Signature"], request.body)
        assert not webhooks.verify("whsec_other", request.headers["Loyalty-Signature"], request.body)
        payload = json.loads(request.body)
        assert payload == {
            "id": event.pk,
            "type": "member.enrolled",
            "created_at": event.created_at.isoformat(),
            "data": {**payload["data"], "external_id": "M-1", "member": "M-1"},
        }
    webhooks.deliver_due()  # nothing more is due
    assert len(receiver.received) == 3


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    import hashlib
    import hmac

    header = webhooks.signature("s3cret", 1700000000, b'{"a":1}')
    expected = hmac.new(b"s3cret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert webhooks.verify("s3cret", header, b'{"a":1}', now=1700000100)
    assert not webhooks.verify("s3cret", header, b'{"a":2}', now=1700000100)
    assert not webhooks.verify("s3cret", header, b'{"a":1}', now=1700000000 + 301)  # a replayed old request
    assert not webhooks.verify("s3cret", "garbage", b"")


def test_the_default_schedule_retries_for_at_least_24_hours_then_the_delivery_fails(member, boss, commit, settings):
    policy = outbox.policy_for(outbox.Kind.WEBHOOK)
    waits = [policy.delay(n) for n in range(1, policy.max_attempts)]
    assert waits[:3] == [dt.timedelta(seconds=30), dt.timedelta(seconds=60), dt.timedelta(seconds=120)]
    assert max(waits) == dt.timedelta(hours=1)
    assert sum(waits, dt.timedelta()) >= dt.timedelta(hours=24)

    settings.WEBHOOK_BACKOFF_SECONDS, settings.WEBHOOK_MAX_ATTEMPTS = 0, 3
    with Receiver(default=500) as down:
        subscribe(boss, down.url)
        with commit():
            emit("member.enrolled", member)
        webhooks.deliver_due()
        webhooks.deliver_due()
        webhooks.deliver_due()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (Status.FAILED, 3, None)
    assert len(down.received) == 3


def test_one_failing_subscription_does_not_hold_up_another(member, boss, commit, settings):
    with Receiver(default=500) as failing, Receiver() as healthy:
        subscribe(boss, failing.url)
        subscribe(boss, healthy.url, events=["*"])
        with commit():
            emit("member.enrolled", member)
            emit("member.tier_changed", member)
    assert len(healthy.received) == 2
    assert WebhookDelivery.objects.filter(subscription__url=healthy.url, status=Status.DELIVERED).count() == 2
    failed = WebhookDelivery.objects.get(subscription__url=failing.url)
    assert failed.status == Status.PENDING and failed.next_attempt_at is not None


def test_a_slow_receiver_is_cut_off_at_the_timeout_and_retried(member, boss, commit, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    with Receiver(delay=3) as slow:
        subscribe(boss, slow.url)
        with commit():
            emit("member.enrolled", member)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == Status.PENDING and delivery.last_status_code is None
    assert "TimeoutError" in delivery.last_error and "within 1 s" in delivery.last_error


def test_a_transaction_that_rolls_back_emits_nothing(member, receiver, boss, commit):
    subscribe(boss, receiver.url)
    before = Event.objects.count()  # the member's own enrolment
    with pytest.raises(RuntimeError, match="boom"), commit():
        emit("member.enrolled", member)
        raise RuntimeError("boom")
    assert Event.objects.count() == before and not WebhookDelivery.objects.exists()
    assert not OutboxMessage.objects.filter(kind="webhook").exists() and receiver.received == []


@pytest.mark.django_db(transaction=True)
def test_emit_belongs_inside_a_transaction():
    member = Member.objects.create(external_id="M-9")
    with pytest.raises(RuntimeError, match="inside the transaction"):
        emit("member.enrolled", member)
    assert not Event.objects.exists()


def test_emit_knows_its_types(member):
    with transaction.atomic(), pytest.raises(ValueError, match="Unknown event type"):
        emit("member.exploded", member)


def test_inactive_and_uninterested_subscriptions_get_nothing(member, receiver, boss, commit):
    sub, _ = subscribe(boss, receiver.url, events=["points.credited"])
    other, _ = subscribe(boss, receiver.url)
    webhooks.update_subscription(subscription=other, actor=boss, active=False)
    before = Event.objects.count()
    with commit():
        emit("member.enrolled", member)
    assert Event.objects.count() == before + 1 and not WebhookDelivery.objects.exists() and receiver.received == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_private_loopback_and_link_local_receivers_are_refused_in_production(url, boss, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(webhooks.UnsafeURL):
        subscribe(boss, url)
    assert not WebhookSubscription.objects.exists()


def test_the_allow_lists_let_a_private_receiver_through(boss, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    settings.WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    subscribe(boss, "http://10.1.2.3/hook")
    settings.WEBHOOK_ALLOWED_HOSTS = ["localhost"]
    subscribe(boss, "http://localhost/hook")
    with pytest.raises(webhooks.UnsafeURL):
        subscribe(boss, "http://192.168.1.1/hook")


def test_a_url_that_became_private_is_refused_at_delivery(member, receiver, boss, commit, settings):
    subscribe(boss, receiver.url)  # allowed when created (tests allow loopback)
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with commit():
        emit("member.enrolled", member)
    delivery = WebhookDelivery.objects.get()
    assert receiver.received == [] and delivery.status == Status.PENDING
    assert delivery.last_error.startswith("Refused: ")


def test_replay_sends_a_delivered_event_again_and_is_in_the_history(member, receiver, boss, commit):
    subscribe(boss, receiver.url)
    with commit():
        emit("member.enrolled", member)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == Status.DELIVERED
    with commit():
        webhooks.replay_delivery(delivery=delivery, actor=boss, reason="Receiver lost its data")
    delivery.refresh_from_db()
    assert delivery.status == Status.DELIVERED and delivery.attempts == 2
    assert len(receiver.received) == 2
    assert receiver.received[0].headers["Loyalty-Event-Id"] == receiver.received[1].headers["Loyalty-Event-Id"]
    assert delivery.history.filter(history_change_reason="Receiver lost its data").exists()


def test_manage_py_deliver_webhooks_sends_what_is_due(member, boss, commit, settings):
    settings.WEBHOOK_BACKOFF_SECONDS = 0
    with Receiver(codes=[500]) as flaky:
        subscribe(boss, flaky.url)
        with commit():
            emit("member.enrolled", member)
        call_command("deliver_webhooks")
        assert [r.status for r in flaky.received] == [500, 200]
    assert WebhookDelivery.objects.get().status == Status.DELIVERED


# --- the API -------------------------------------------------------------------------------------


@pytest.fixture
def integration(db):
    return api_client_for(make_user("crm", roles.INTEGRATION))


def test_the_secret_is_shown_once_and_can_be_rotated(integration, receiver):
    created = integration.post("/api/v1/webhooks/", {"url": receiver.url, "events": ["*"]}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    secret, pk = body["secret"], body["id"]
    assert secret.startswith("whsec_") and body["secret_prefix"] == secret[:12]
    shown = integration.get(f"/api/v1/webhooks/{pk}/").json()
    assert "secret" not in shown and secret not in json.dumps(integration.get("/api/v1/webhooks/").json())
    rotated = integration.post(f"/api/v1/webhooks/{pk}/rotate-secret")
    assert rotated.status_code == 200 and rotated.json()["secret"] not in (secret, None)
    assert WebhookSubscription.objects.get(pk=pk).secret == rotated.json()["secret"]
    assert secret not in json.dumps(list(WebhookSubscription.history.values()), default=str)


def test_subscriptions_are_validated_patched_and_deleted(integration, receiver):
    bad = integration.post("/api/v1/webhooks/", {"url": receiver.url, "events": ["nope"]}, format="json")
    assert bad.status_code == 400 and "events" in bad.json()["errors"]
    bad = integration.post("/api/v1/webhooks/", {"url": "ftp://x", "events": ["*"]}, format="json")
    assert bad.status_code == 400
    pk = integration.post("/api/v1/webhooks/", {"url": receiver.url, "events": ["*"]}, format="json").json()["id"]
    patched = integration.patch(f"/api/v1/webhooks/{pk}/", {"active": False, "description": "CRM"}, format="json")
    assert patched.status_code == 200 and patched.json()["active"] is False
    assert integration.delete(f"/api/v1/webhooks/{pk}/").status_code == 204
    assert not WebhookSubscription.objects.exists()


def test_deliveries_are_listed_and_replayed_through_the_api(integration, receiver, member, commit, boss):
    sub, _ = subscribe(boss, receiver.url)
    with commit():
        emit("member.enrolled", member)
    listed = integration.get(f"/api/v1/webhooks/{sub.pk}/deliveries/?status=delivered&type=member.enrolled")
    assert listed.status_code == 200
    [row] = listed.json()["results"]
    assert {k: row[k] for k in ("type", "status", "attempts", "last_status_code")} == {
        "type": "member.enrolled",
        "status": "delivered",
        "attempts": 1,
        "last_status_code": 200,
    }
    assert set(row) >= {"event", "last_error", "next_attempt_at"}
    replayed = integration.post(f"/api/v1/webhook-deliveries/{row['id']}/replay")
    assert replayed.status_code == 200 and replayed.json()["status"] in ("pending", "delivered")


def test_a_support_agent_cannot_manage_webhooks(db, receiver):
    support = api_client_for(make_user("sue", roles.SUPPORT_AGENT))
    assert support.get("/api/v1/webhooks/").status_code == 403
    assert support.post("/api/v1/webhooks/", {"url": receiver.url, "events": ["*"]}, format="json").status_code == 403


# --- the admin -----------------------------------------------------------------------------------


def test_the_admin_shows_the_secret_once_and_replays_from_the_delivery_log(
    member, receiver, boss, django_capture_on_commit_callbacks
):
    client = login(boss)
    response = client.post(
        admin_url("loyalty_webhooksubscription_add"),
        {"url": receiver.url, "events": ["member.enrolled"], "active": "on", "description": "CRM"},
        follow=True,
    )
    sub = WebhookSubscription.objects.get()
    [message] = [m for m in messages_of(response) if "signing secret" in m]
    assert sub.secret in message
    change_page = client.get(admin_url("loyalty_webhooksubscription_change", sub.pk)).content.decode()
    assert sub.secret not in change_page and sub.secret_prefix in change_page

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        emit("member.enrolled", member)
    delivery = WebhookDelivery.objects.get()
    listed = client.get(admin_url("loyalty_webhookdelivery_changelist", query="status__exact=delivered"))
    assert listed.status_code == 200 and [d.pk for d in listed.context["cl"].result_list] == [delivery.pk]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            admin_url("loyalty_webhookdelivery_changelist"),
            {"action": "replay", "_selected_action": [delivery.pk], "reason": "Receiver restored a backup"},
        )
    assert len(receiver.received) == 2
    assert delivery.history.filter(history_change_reason="Receiver restored a backup").exists()
