"""Every API.md event type is emitted by the change it reports, in that change's transaction, with
the object as its GET endpoint shows it; a refused request (409) and a rollback emit nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from loyalty import services as loyalty
from loyalty.kernel import SYSTEM, unit_of_work
from loyalty.models import Event, ProgramSettings, Reward, Segment, WebhookDelivery
from promotions import services as promotions
from redemptions import services as redemptions
from retro import services as retro
from tests.helpers import FIXED, api_client_for, make_user

pytestmark = pytest.mark.django_db


def types() -> list[str]:
    return list(Event.objects.order_by("id").values_list("type", flat=True))


def last(type_: str) -> Event:
    return Event.objects.filter(type=type_).latest("id")


def without_member(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "member"}


@pytest.fixture
def boss(db):
    return make_user("boss", superuser=True)


@pytest.fixture
def client(boss):
    return api_client_for(boss)


@pytest.fixture
def reward(metric):
    return Reward.objects.create(
        external_id="R-1",
        name="Tote bag",
        type="physical_product",
        metric=metric,
        points=100,
        requires_fulfillment=True,
    )


def test_members_and_points_through_the_api_carry_what_get_shows(client, metric, tiers):
    created = client.post("/api/v1/members/", {"external_id": "M-7", "email": "g@example.com"}, format="json")
    assert created.status_code == 201
    assert types() == ["member.enrolled"]
    shown = client.get("/api/v1/members/M-7/").json()
    assert without_member(last("member.enrolled").data) == shown and last("member.enrolled").data["member"] == "M-7"

    client.post("/api/v1/members/M-7/tier", {"tier": "GOLD", "reason": "VIP"}, format="json")
    event = last("member.tier_changed")
    assert event.data["tier"] == "GOLD" and event.data["previous_tier"] == "BRONZE" and event.data["member"] == "M-7"

    client.post("/api/v1/members/M-7/adjustments/", {"metric": "points", "amount": 50, "reason": "x"}, format="json")
    client.post("/api/v1/members/M-7/adjustments/", {"metric": "points", "amount": -20, "reason": "y"}, format="json")
    ledger = {e["id"]: e for e in client.get("/api/v1/members/M-7/ledger/").json()["results"]}
    credited, debited = last("points.credited"), last("points.debited")
    assert without_member(credited.data) == ledger[credited.data["id"]] and credited.data["amount"] == 50
    assert without_member(debited.data) == ledger[debited.data["id"]] and debited.data["amount"] == -20
    assert types() == ["member.enrolled", "member.tier_changed", "points.credited", "points.debited"]


def test_a_refused_request_409_emits_nothing(client, member, metric, reward):
    loyalty.credit_points(member=member, metric=metric, amount=500, actor=SYSTEM)
    red = client.post("/api/v1/redemptions/", {"member": "M-1", "reward": "R-1"}, format="json").json()
    assert (
        client.post(f"/api/v1/redemptions/{red['id']}/status", {"status": "canceled"}, format="json").status_code == 200
    )
    before = Event.objects.count()
    refused = client.post(f"/api/v1/redemptions/{red['id']}/status", {"status": "completed"}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_transition"
    refused = client.post(f"/api/v1/redemptions/{red['id']}/rollback", {"reason": "other"}, format="json")
    assert refused.status_code == 409
    assert Event.objects.count() == before


def test_a_transaction_that_rolls_back_emits_nothing_and_delivers_nothing(member, metric, boss):
    from loyalty.events import webhooks

    webhooks.create_subscription(url="http://127.0.0.1:9/hook", events=["*"], actor=boss)
    with pytest.raises(RuntimeError), unit_of_work("a request that fails after the credit"):
        loyalty.credit_points(member=member, metric=metric, amount=10, actor=SYSTEM)
        raise RuntimeError("something later in the request failed")
    assert not Event.objects.filter(type="points.credited").exists() and not WebhookDelivery.objects.exists()


def test_redemptions_and_rollbacks(client, member, metric, reward, boss, support_user, approver_user):
    loyalty.credit_points(member=member, metric=metric, amount=1000, actor=SYSTEM)
    red = redemptions.redeem_reward(member=member, reward=reward, actor=support_user)
    event = last("redemption.created")
    assert event.data == {**client.get(f"/api/v1/redemptions/{red.pk}/").json(), "updated_at": event.data["updated_at"]}
    redemptions.change_fulfillment(redemption=red, fulfillment_status="confirmed_paid", actor=support_user)
    assert last("redemption.fulfillment_changed").data["fulfillment_status"] == "confirmed_paid"
    redemptions.change_status(redemption=red, status="processing", actor=support_user)
    assert last("redemption.status_changed").data["status"] == "processing"

    approval = Reward.objects.create(
        external_id="R-2", name="Trip", type="experience", metric=metric, points=100, requires_approval=True
    )
    red2 = redemptions.redeem_reward(member=member, reward=approval, actor=support_user)
    redemptions.approve_redemption(redemption=red2, actor=approver_user)
    assert last("redemption.approval_changed").data["approval_status"] == "approved"

    ProgramSettings.objects.update_or_create(pk=1, defaults={"rollback_approval_above_points": 50})
    pending = redemptions.rollback_redemption(redemption=red2, reason="customer_request", actor=support_user)
    assert pending.status == "pending_approval" and last("rollback.requested").data["id"] == pending.pk
    redemptions.reject_rollback(rollback=pending, actor=approver_user, reason="no")
    assert last("rollback.rejected").data["status"] == "rejected"
    again = redemptions.rollback_redemption(redemption=red2, reason="customer_request", actor=support_user)
    redemptions.approve_rollback(rollback=again, actor=approver_user)
    executed = last("rollback.executed")
    assert executed.data == {**client.get(f"/api/v1/rollbacks/{again.pk}/").json(), "member": "M-1"}
    assert last("redemption.status_changed").data["status"] == "canceled"
    assert last("points.credited").data["kind"] == "rollback"


def test_retro_claims(metric, tiers, admin_user, support_user, approver_user, django_capture_on_commit_callbacks):
    ProgramSettings.objects.update_or_create(pk=1, defaults={"retro_enabled": True, "retro_window_days": 3650})
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        rules = loyalty.create_rule_set(
            name="Base", valid_from=start, actor=admin_user, rules=[{**FIXED, "points": 45}]
        )
        loyalty.publish_rule_set(rule_set=rules, actor=admin_user)
        member = loyalty.enroll_member(external_id="K-1", actor=SYSTEM)
    txn = loyalty.record_transaction(
        external_id="BILL-1",
        occurred_at=start + dt.timedelta(days=1),
        amount=Decimal("10.00"),
        currency="EUR",
        actor=SYSTEM,
    )
    claim = retro.submit_retro_claim(transaction_=txn, member=member, actor=support_user)
    assert last("retro_claim.submitted").data["status"] == "submitted"
    with django_capture_on_commit_callbacks(execute=True):
        retro.approve_retro_claim(claim=claim, actor=approver_user)
    processed = last("retro_claim.processed")
    assert processed.data["status"] == "processed" and processed.data["points_awarded"] == 45
    assert processed.data["member"] == "K-1"


def test_codes_and_batches(member, metric, boss, django_capture_on_commit_callbacks):
    campaign = promotions.create_campaign(actor=boss, name="Spring", kind="percent_discount", value=10)
    campaign = promotions.change_campaign_status(campaign=campaign, status="active", actor=boss)
    segment = Segment.objects.create(code="vip", name="VIP")
    segment.members.set([member])
    with django_capture_on_commit_callbacks(execute=True):
        batch = promotions.create_code_batch(campaign=campaign, actor=boss, segment=segment, length=10)
    completed = last("code_batch.completed")
    assert completed.data["id"] == batch.pk and completed.data["status"] == "completed"
    code = promotions.create_named_code(campaign=campaign, code="WELCOME10", actor=boss, max_uses=5)
    request = promotions.clean_request(
        codes=["WELCOME10"], member=member, order={"id": "o-1", "amount": "100.00", "channel": "online"}
    )
    [use] = promotions.redeem_codes(request, actor=boss)
    redeemed = last("code.redeemed")
    assert redeemed.data["id"] == use.pk and redeemed.data["code"] == "WELCOME10" and redeemed.data["member"] == "M-1"
    promotions.void_code(code=code, actor=boss, reason="leaked")
    assert last("code.voided").data["status"] == "void"
