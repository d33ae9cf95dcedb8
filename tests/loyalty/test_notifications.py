"""Member notifications: one template set (text + HTML, the brand name), every message logged
(queued, sent, failed, skipped with a reason), marketing_opt_in respected; expiry reminders once
per lot, N days before, emitting points.expiring."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core import mail

from loyalty import outbox
from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import Event, MemberNotification, OutboxMessage, ProgramSettings, Reward, Segment
from loyalty.reminders import send_expiry_reminders
from promotions import services as promotions
from redemptions import services as redemptions
from tests.helpers import make_user

T0 = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
Status, Reason = MemberNotification.Status, MemberNotification.Reason


def log_of(member):
    return list(
        MemberNotification.objects.filter(member=member).order_by("id").values_list("template", "status", "reason")
    )


@pytest.fixture
def boss(db):
    return make_user("boss", superuser=True)


@pytest.fixture
def opted_out(member):
    member.marketing_opt_in = False
    member.save(update_fields=["marketing_opt_in"])
    return member


def distribute_codes(boss, *members):
    campaign = promotions.create_campaign(actor=boss, name="Spring sale", kind="percent_discount", value=10)
    campaign = promotions.change_campaign_status(campaign=campaign, status="active", actor=boss)
    segment = Segment.objects.create(code="vip", name="VIP")
    segment.members.set(members)
    return promotions.create_code_batch(campaign=campaign, actor=boss, segment=segment, length=10, email_members=True)


def test_an_opted_out_member_gets_no_code_distribution_and_it_is_logged_skipped(
    member, opted_out, boss, tiers, django_capture_on_commit_callbacks
):
    other = loyalty.enroll_member(external_id="M-2", email="bob@example.com", name="Bob", actor=SYSTEM)
    with django_capture_on_commit_callbacks(execute=True):
        distribute_codes(boss, opted_out, other)
    assert [m.to for m in mail.outbox] == [["bob@example.com"]]
    assert log_of(opted_out) == [("code_assigned", Status.SKIPPED, Reason.OPTED_OUT)]
    assert log_of(other) == [("code_assigned", Status.SENT, "")]


def test_an_opted_out_member_still_gets_transactional_messages_logged_sent(
    opted_out, metric, support_user, django_capture_on_commit_callbacks
):
    loyalty.credit_points(member=opted_out, metric=metric, amount=500, actor=SYSTEM)
    reward = Reward.objects.create(
        external_id="R-1", name="Tote bag", type="physical_product", metric=metric, points=100
    )
    with django_capture_on_commit_callbacks(execute=True):
        red = redemptions.redeem_reward(member=opted_out, reward=reward, actor=support_user)
        redemptions.rollback_redemption(redemption=red, reason="customer_request", actor=support_user)
    assert [m.subject for m in mail.outbox] == ["Your redemption of Tote bag was undone"]
    [notification] = MemberNotification.objects.filter(member=opted_out)
    assert (notification.template, notification.status, notification.category) == (
        "rollback_executed",
        Status.SENT,
        "transactional",
    )
    assert notification.sent_at is not None and notification.recipient == "ann@example.com"


def test_every_message_has_a_text_and_an_html_part_with_the_brand(
    member, metric, support_user, settings, django_capture_on_commit_callbacks
):
    settings.BRAND_NAME = "Acme Rewards"
    loyalty.credit_points(member=member, metric=metric, amount=500, actor=SYSTEM)
    reward = Reward.objects.create(
        external_id="R-1", name="Tote bag", type="physical_product", metric=metric, points=100
    )
    with django_capture_on_commit_callbacks(execute=True):
        red = redemptions.redeem_reward(member=member, reward=reward, actor=support_user)
        redemptions.rollback_redemption(redemption=red, reason="customer_request", actor=support_user)
    [message] = mail.outbox
    assert "Acme Rewards" in message.body and "Tote bag" in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html" and "Acme Rewards" in html and "Tote bag" in html and "<html" in html


def test_a_member_without_email_is_logged_skipped_no_email(
    metric, tiers, support_user, django_capture_on_commit_callbacks
):
    member = loyalty.enroll_member(external_id="NOMAIL", actor=SYSTEM)
    loyalty.credit_points(member=member, metric=metric, amount=500, actor=SYSTEM)
    reward = Reward.objects.create(
        external_id="R-1", name="Tote bag", type="physical_product", metric=metric, points=100
    )
    with django_capture_on_commit_callbacks(execute=True):
        red = redemptions.redeem_reward(member=member, reward=reward, actor=support_user)
        rollback = redemptions.rollback_redemption(redemption=red, reason="customer_request", actor=support_user)
    assert not rollback.notified and mail.outbox == []
    assert log_of(member) == [("rollback_executed", Status.SKIPPED, Reason.NO_EMAIL)]


def test_a_mail_server_error_is_retried_and_then_logged_failed(
    member, metric, support_user, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.loyalty.test_notifications.BrokenBackend"
    loyalty.credit_points(member=member, metric=metric, amount=500, actor=SYSTEM)
    reward = Reward.objects.create(
        external_id="R-1", name="Tote bag", type="physical_product", metric=metric, points=100
    )
    with django_capture_on_commit_callbacks(execute=True):
        red = redemptions.redeem_reward(member=member, reward=reward, actor=support_user)
        redemptions.rollback_redemption(redemption=red, reason="customer_request", actor=support_user)
    notification = MemberNotification.objects.get(member=member)
    assert notification.status == Status.QUEUED and "SMTP down" in notification.last_error  # the outbox retries
    # The last of its attempts (8) fails too: the message is given up, and so logged.
    OutboxMessage.objects.filter(pk=notification.outbox_message_id).update(attempts=7, available_at=T0)
    outbox.sweep()
    notification.refresh_from_db()
    assert notification.status == Status.FAILED and notification.attempts == 2


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionError("SMTP down")


def test_the_member_notifications_endpoint_lists_sent_and_skipped(
    member, opted_out, boss, support, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        distribute_codes(boss, opted_out)
    response = support.get(f"/api/v1/members/{member.external_id}/notifications/")
    assert response.status_code == 200
    [row] = response.json()["results"]
    assert {k: row[k] for k in ("template", "channel", "status", "reason", "sent_at")} == {
        "template": "code_assigned",
        "channel": "email",
        "status": "skipped",
        "reason": "opted_out",
        "sent_at": None,
    }
    assert "created_at" in row
    assert support.get("/api/v1/members/NOPE/notifications/").status_code == 404


# --- expiry reminders ----------------------------------------------------------------------------


@pytest.fixture
def expiring(member, metric):
    """Two lots of Ann's, expiring 365 days after T0 and after T0 + 30 days."""
    with time_machine.travel(T0, tick=False):
        loyalty.credit_points(member=member, metric=metric, amount=100, reason="first", actor=SYSTEM)
    with time_machine.travel(T0 + dt.timedelta(days=30), tick=False):
        loyalty.credit_points(member=member, metric=metric, amount=50, reason="second", actor=SYSTEM)
    return member


def remind(days_after_t0: float, capture) -> int:
    with time_machine.travel(T0 + dt.timedelta(days=days_after_t0), tick=False), capture(execute=True):
        return send_expiry_reminders()


def test_the_reminder_goes_once_per_lot_n_days_before_and_emits_the_event(expiring, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    assert remind(365 - 15, capture) == 0  # 15 days before the first lot expires: not yet (14)
    assert remind(365 - 14, capture) == 1
    assert remind(365 - 13, capture) == 0  # once per lot
    assert remind(365 - 1, capture) == 0
    assert remind(395 - 14, capture) == 1  # the second lot
    assert len(mail.outbox) == 2 and "100 Points" in mail.outbox[0].body and "50 Points" in mail.outbox[1].body
    events = list(Event.objects.filter(type="points.expiring").order_by("id"))
    assert [e.data["amount"] for e in events] == [100, 50]
    assert events[0].data["member"] == "M-1" and events[0].data["metric"] == "points"
    assert log_of(expiring) == [("points_expiring", Status.SENT, "")] * 2


def test_the_reminder_respects_the_setting(expiring, django_capture_on_commit_callbacks):
    ProgramSettings.objects.update_or_create(pk=1, defaults={"expiry_reminder_days": None})
    assert remind(365 - 1, django_capture_on_commit_callbacks) == 0
    ProgramSettings.objects.filter(pk=1).update(expiry_reminder_days=30)
    assert remind(365 - 30, django_capture_on_commit_callbacks) == 1
    assert Event.objects.filter(type="points.expiring").count() == 1


def test_spent_points_get_no_reminder(expiring, metric, django_capture_on_commit_callbacks):
    with time_machine.travel(T0 + dt.timedelta(days=40), tick=False):
        loyalty.debit_points(member=expiring, metric=metric, amount=100, reason="spent", actor=SYSTEM)
    assert remind(365 - 14, django_capture_on_commit_callbacks) == 0


def test_an_opted_out_member_gets_no_reminder_logged_skipped_once(
    expiring, opted_out, django_capture_on_commit_callbacks
):
    assert remind(365 - 14, django_capture_on_commit_callbacks) == 1
    assert remind(365 - 13, django_capture_on_commit_callbacks) == 0
    assert mail.outbox == []
    assert log_of(expiring) == [("points_expiring", Status.SKIPPED, Reason.OPTED_OUT)]
    assert Event.objects.filter(type="points.expiring").count() == 1  # integrations still hear of it


def test_the_member_page_shows_the_messages(member, opted_out, boss, django_capture_on_commit_callbacks):
    from tests.helpers import admin_url, login

    with django_capture_on_commit_callbacks(execute=True):
        distribute_codes(boss, opted_out)
    page = login(boss).get(admin_url("loyalty_member_change", member.pk)).content.decode()
    assert 'id="notifications-panel"' in page and "<strong>opted out</strong>" in page
    assert 'data-template="code_assigned" data-status="skipped"' in page and "Opted out of marketing" in page
