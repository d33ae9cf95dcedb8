"""The v1 API for rollbacks: the seed 003 story in one call, lots with their expiries, policy refusals
that carry their codes and write nothing, and four-eyes approval of rollbacks that must wait."""

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from loyalty import roles
from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, PointBalance, Reward
from loyalty.selectors import verify_ledger
from promotions import services as promotions
from promotions.models import Code
from redemptions.models import Redemption, Rollback
from tests.helpers import BASE, api_client_for, assert_error, balance, make_user

T0 = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)


def redeem(client, member, reward, **extra):
    resp = client.post(
        f"{BASE}/redemptions/", {"member": member.external_id, "reward": reward.external_id, **extra}, format="json"
    )
    assert resp.status_code == 201, resp.content
    return resp.json()


def rollback(client, redemption_id, **body):
    body.setdefault("reason", "customer_request")
    return client.post(f"{BASE}/redemptions/{redemption_id}/rollback", body, format="json")


@pytest.fixture
def writes(db):
    def snapshot():
        return (
            list(
                Rollback.objects.order_by("pk").values_list("status", "points_returned", "approved_by", "rejected_by")
            ),
            Rollback.history.count(),
            LedgerEntry.objects.count(),
            list(PointBalance.objects.order_by("pk").values_list("balance", "pending", "debt")),
            list(Redemption.objects.order_by("pk").values_list("status", "points_returned", "stock_returned")),
            list(Reward.objects.order_by("pk").values_list("stock", flat=True)),
            list(Code.objects.order_by("pk").values_list("status", "uses")),
        )

    return snapshot


@pytest.fixture
def lead(db):
    """A support lead who is an Approver too: may request and approve, never both for one rollback."""
    return api_client_for(make_user("lead", roles.SUPPORT_AGENT, roles.APPROVER))


# --- seed 003 ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_003_in_one_call_voids_the_code_credits_points_and_emails(
    api, member, metric, code_reward, django_capture_on_commit_callbacks
):
    loyalty.credit_points(member=member, metric=metric, amount=500, actor=SYSTEM)
    red = redeem(api, member, code_reward)
    assert red["issued_code"] and balance(member) == 400
    with django_capture_on_commit_callbacks(execute=True):
        resp = rollback(api, red["id"], note="redeemed by mistake")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert (body["status"], body["points_returned"], body["code_voided"], body["notified"], body["full"]) == (
        "executed",
        100,
        True,
        True,
        True,
    )
    assert (body["redemption"], body["member"], body["reason"], body["note"]) == (
        red["id"],
        "M-1",
        "customer_request",
        "redeemed by mistake",
    )
    assert body["requested_by"] == "pos" and body["approved_by"] is None and body["executed_at"]
    [entry_id] = body["ledger_entries"]
    assert LedgerEntry.objects.get(pk=entry_id).amount == 100
    assert Code.objects.get(code=red["issued_code"]).status == "void"
    assert balance(member) == 500
    assert api.get(f"{BASE}/redemptions/{red['id']}/").json()["status"] == "canceled"
    assert [m.subject for m in mail.outbox] == ["Your redemption of 10 EUR voucher was undone"]
    assert red["issued_code"] in mail.outbox[0].body and mail.outbox[0].to == ["ann@example.com"]
    assert api.get(f"{BASE}/rollbacks/{body['id']}/").json() == body
    assert verify_ledger().ok


# --- lots and expiries ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_full_and_partial_rollbacks_restore_lots_with_their_expiries(api, member, metric, reward, policy):
    with time_machine.travel(T0, tick=False):
        soon = loyalty.credit_points(
            member=member, metric=metric, amount=60, expires_at=T0 + dt.timedelta(days=10), actor=SYSTEM
        )
        late = loyalty.credit_points(
            member=member, metric=metric, amount=100, expires_at=T0 + dt.timedelta(days=200), actor=SYSTEM
        )
        red = redeem(api, member, reward(points=100))  # 60 from the soon lot, 40 from the late one
    with time_machine.travel(T0 + dt.timedelta(days=1), tick=False):
        part = rollback(api, red["id"], reason="technical_error", points=30).json()
        assert (part["status"], part["full"], part["points_requested"], part["points_returned"]) == (
            "executed",
            False,
            30,
            30,
        )
        # the soonest-expiring part comes back last
        got = [(e.amount, e.expires_at) for e in LedgerEntry.objects.filter(pk__in=part["ledger_entries"])]
        assert got == [(30, late.expires_at)]
        assert api.get(f"{BASE}/redemptions/{red['id']}/").json()["status"] == "pending"
    with time_machine.travel(T0 + dt.timedelta(days=20), tick=False):
        rest = rollback(api, red["id"], reason="technical_error").json()
        assert (rest["status"], rest["full"], rest["points_returned"]) == ("executed", True, 70)
        got = sorted((e.amount, e.expires_at) for e in LedgerEntry.objects.filter(pk__in=rest["ledger_entries"]))
        assert got == [(10, late.expires_at), (60, soon.expires_at)]
        # the soon lot expired meanwhile: those 60 points came back expired
        assert LedgerEntry.objects.filter(kind="expiry", amount=-60).exists()
    body = api.get(f"{BASE}/redemptions/{red['id']}/").json()
    assert (body["status"], body["points_returned"]) == ("canceled", 100)
    assert balance(member) == 100
    assert verify_ledger().ok


@pytest.mark.django_db
def test_grace_period_from_the_policy_is_applied(api, member, metric, reward, policy):
    policy.rollback_expired_lot_grace_days = 7
    policy.save()
    with time_machine.travel(T0, tick=False):
        loyalty.credit_points(
            member=member, metric=metric, amount=100, expires_at=T0 + dt.timedelta(days=5), actor=SYSTEM
        )
        red = redeem(api, member, reward(points=100))
    with time_machine.travel(T0 + dt.timedelta(days=10), tick=False):
        body = rollback(api, red["id"]).json()
    [entry] = LedgerEntry.objects.filter(pk__in=body["ledger_entries"])
    assert entry.expires_at == T0 + dt.timedelta(days=17) and entry.breakdown["grace_days"] == 7
    assert balance(member) == 100 and verify_ledger().ok


# --- policy refusals -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_policy_refusals_carry_their_codes_and_write_nothing(
    api, support, lead, approver, rich_member, reward, code_reward, admin_user, policy, writes
):
    with time_machine.travel(timezone.now() - dt.timedelta(days=31)):
        old = redeem(api, rich_member, reward())
    shipped = redeem(api, rich_member, reward(requires_fulfillment=True))
    for status in ("confirmed_paid", "shipped"):
        api.post(f"{BASE}/redemptions/{shipped['id']}/fulfillment", {"fulfillment_status": status}, format="json")
    used = redeem(api, rich_member, code_reward)
    promotions.redeem_codes(
        promotions.clean_request(codes=[used["issued_code"]], member=rich_member, order={"amount": "50"}),
        actor=admin_user,
    )
    fine = redeem(api, rich_member, reward(stock=3))
    canceled = redeem(api, rich_member, reward())
    api.post(f"{BASE}/redemptions/{canceled['id']}/status", {"status": "canceled"}, format="json")

    before = writes()
    cases = [
        (rollback(api, old["id"]), 422, "rollback_window_closed", None),
        (rollback(api, shipped["id"]), 409, "invalid_transition", "fulfillment_status"),
        (rollback(api, canceled["id"]), 409, "invalid_transition", "status"),
        (rollback(api, used["id"]), 409, "code_already_used", None),
        (rollback(api, fine["id"], points=101), 409, "exceeds_spent", "points"),
        (rollback(api, fine["id"], reason="oops"), 400, "invalid", "reason"),
        (rollback(api, fine["id"], points=0), 400, "invalid", "points"),
        (rollback(api, fine["id"], points=-5), 400, "invalid", "points"),
        (rollback(api, fine["id"], points=10**15), 400, "invalid", "points"),
        (rollback(api, fine["id"], points="ten"), 400, "invalid", "points"),
        (
            api.post(f"{BASE}/redemptions/{fine['id']}/rollback", "{x", content_type="application/json"),
            400,
            "malformed_request",
            None,
        ),
        (rollback(approver, fine["id"]), 403, "permission_denied", None),  # approvers decide, they don't request
    ]
    for response, status, code, field in cases:
        assert_error(response, status, code, field)
    assert writes() == before

    policy.rollback_partial_allowed = False
    policy.save()
    assert_error(rollback(api, fine["id"], points=50), 422, "partial_not_allowed")
    assert writes() == before

    # four-eyes: the requester may not decide their own rollback, either way
    pending = rollback(lead, fine["id"], reason="fraud").json()
    assert pending["status"] == "pending_approval"
    before = writes()
    assert_error(lead.post(f"{BASE}/rollbacks/{pending['id']}/approve", {}, format="json"), 422, "four_eyes_required")
    assert_error(
        lead.post(f"{BASE}/rollbacks/{pending['id']}/reject", {"reason": "mine"}, format="json"),
        422,
        "four_eyes_required",
    )
    assert writes() == before
    # the only rollback that ever executed is the cancel of the setup
    assert list(Rollback.objects.filter(status="executed").values_list("redemption", "via")) == [
        (canceled["id"], "cancel")
    ]


# --- approval ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_fraud_and_large_rollbacks_wait_for_a_second_person(
    api, support, lead, approver, approver2, rich_member, reward, policy, writes, django_capture_on_commit_callbacks
):
    policy.rollback_approval_above_points = 150
    policy.save()
    fraud = redeem(support, rich_member, reward(stock=1))
    with django_capture_on_commit_callbacks(execute=True):
        resp = rollback(lead, fraud["id"], reason="fraud", note="stolen account")
    assert resp.status_code == 201, resp.content
    pending = resp.json()
    assert pending["status"] == "pending_approval" and "fraud" in pending["approval_required_because"]
    assert (pending["points_requested"], pending["points_returned"], pending["ledger_entries"]) == (100, 0, [])
    assert pending["notified"] and "received the request" in mail.outbox[-1].body
    assert balance(rich_member) == 900  # nothing moves until a second person approves
    assert api.get(f"{BASE}/rollbacks/", {"status": "pending_approval"}).json()["count"] == 1

    before = writes()
    assert_error(lead.post(f"{BASE}/rollbacks/{pending['id']}/approve", {}, format="json"), 422, "four_eyes_required")
    assert_error(support.post(f"{BASE}/rollbacks/{pending['id']}/approve", {}, format="json"), 403, "permission_denied")
    assert_error(approver.post(f"{BASE}/rollbacks/{pending['id']}/reject", {}, format="json"), 400, "invalid", "reason")
    assert writes() == before

    resp = approver.post(f"{BASE}/rollbacks/{pending['id']}/approve", {"note": "checked"}, format="json")
    assert resp.status_code == 200, resp.content
    done = resp.json()
    assert (done["status"], done["points_returned"], done["approved_by"], done["requested_by"]) == (
        "executed",
        100,
        "alex",
        "lead",
    )
    assert done["decision_note"] == "checked" and len(done["ledger_entries"]) == 1 and done["stock_restored"]
    assert balance(rich_member) == 1000
    before = writes()
    assert_error(
        api_client_for(approver2).post(f"{BASE}/rollbacks/{pending['id']}/approve", {}, format="json"),
        409,
        "invalid_transition",
    )
    assert writes() == before

    big = redeem(support, rich_member, reward(points=200))
    waiting = rollback(support, big["id"]).json()
    assert waiting["status"] == "pending_approval" and "200 points > 150" in waiting["approval_required_because"]
    small = rollback(support, redeem(support, rich_member, reward(points=50))["id"]).json()
    assert small["status"] == "executed"  # under the threshold, not fraud: no second person needed
    resp = api_client_for(approver2).post(
        f"{BASE}/rollbacks/{waiting['id']}/reject", {"reason": "outside policy"}, format="json"
    )
    assert resp.status_code == 200, resp.content
    assert (resp.json()["status"], resp.json()["rejected_by"], resp.json()["decision_note"]) == (
        "rejected",
        "approver2",
        "outside policy",
    )
    body = api.get(f"{BASE}/redemptions/{big['id']}/").json()
    assert (body["status"], body["points_returned"]) == ("pending", 0)
    assert balance(rich_member) == 800
    assert verify_ledger().ok


@pytest.mark.django_db
def test_rollback_list_filters_detail_and_permissions(api, support, lead, rich_member, reward, auditor_user):
    other = loyalty.enroll_member(external_id="M-2", actor=SYSTEM)
    loyalty.credit_points(member=other, metric=reward().metric, amount=300, actor=SYSTEM)
    a = rollback(support, redeem(support, rich_member, reward())["id"], reason="other").json()
    b = rollback(lead, redeem(support, other, reward())["id"], reason="fraud").json()
    c = rollback(support, redeem(support, rich_member, reward())["id"], reason="technical_error", points=40).json()

    def ids(**params):
        r = api.get(f"{BASE}/rollbacks/", params)
        assert r.status_code == 200, r.content
        return [row["id"] for row in r.json()["results"]]

    assert ids() == [c["id"], b["id"], a["id"]]
    assert ids(status="executed") == [c["id"], a["id"]] and ids(status="pending_approval") == [b["id"]]
    assert ids(reason="fraud") == [b["id"]]
    assert ids(member="M-2") == [b["id"]] and ids(member="NOPE") == []
    assert ids(redemption=c["redemption"]) == [c["id"]]
    assert_error(api.get(f"{BASE}/rollbacks/", {"status": "maybe"}), 400, "invalid", "status")
    assert api.get(f"{BASE}/rollbacks/{c['id']}/").json()["full"] is False
    assert_error(api.get(f"{BASE}/rollbacks/999/"), 404, "not_found")
    assert_error(api.post(f"{BASE}/rollbacks/999/approve", {}, format="json"), 403, "permission_denied")
    assert_error(lead.post(f"{BASE}/rollbacks/999/approve", {}, format="json"), 404, "not_found")
    assert api_client_for(auditor_user).get(f"{BASE}/rollbacks/").json()["count"] == 3
    assert_error(api_client_for(make_user("nobody")).get(f"{BASE}/rollbacks/"), 403, "permission_denied")


@pytest.mark.django_db
def test_idempotency_key_rolls_back_once(api, rich_member, reward):
    red = redeem(api, rich_member, reward())
    url = f"{BASE}/redemptions/{red['id']}/rollback"
    first = api.post(url, {"reason": "other", "points": 40}, format="json", HTTP_IDEMPOTENCY_KEY="rb-1")
    again = api.post(url, {"reason": "other", "points": 40}, format="json", HTTP_IDEMPOTENCY_KEY="rb-1")
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert Rollback.objects.count() == 1 and balance(rich_member) == 940
    assert_error(
        api.post(url, {"reason": "other", "points": 41}, format="json", HTTP_IDEMPOTENCY_KEY="rb-1"),
        422,
        "idempotency_key_reused",
    )
    assert Rollback.objects.count() == 1


# --- issue 12: the holes around the rollback policy, each through the API -------------------------


def use_code(client, member, code):
    body = {"codes": [code], "member": member.external_id, "order": {"id": f"o-{code}", "amount": "50.00"}}
    resp = client.post(f"{BASE}/codes/redeem", body, format="json")
    assert resp.status_code == 201, resp.content
    return resp.json()["code_redemptions"][0]["id"]


@pytest.mark.django_db
def test_cancel_obeys_the_rollback_policy_code_used_delivered_or_rollback_pending(
    api, lead, approver, member, metric, reward, code_reward, writes
):
    """Cancel used to give every point back around the policy: a used code, a delivered product, a
    fraud rollback waiting for a second person (the requester escaped the approver)."""
    loyalty.credit_points(member=member, metric=metric, amount=3000, actor=SYSTEM)
    used = redeem(api, member, code_reward)
    use_code(api, member, used["issued_code"])
    delivered = redeem(api, member, reward(requires_fulfillment=True))
    for status in ("confirmed_paid", "shipped", "delivered"):
        api.post(f"{BASE}/redemptions/{delivered['id']}/fulfillment", {"fulfillment_status": status}, format="json")
    suspicious = redeem(api, member, reward(points=500))
    assert rollback(lead, suspicious["id"], reason="fraud").json()["status"] == "pending_approval"
    before = writes()
    for red, code in [(used, "code_already_used"), (delivered, "invalid_transition"), (suspicious, "rollback_pending")]:
        resp = lead.post(f"{BASE}/redemptions/{red['id']}/status", {"status": "canceled"}, format="json")
        assert_error(resp, 409, code)
    assert writes() == before and balance(member) == 3000 - 100 - 100 - 500
    verify = [api.get(f"{BASE}/redemptions/{r['id']}/").json()["status"] for r in (used, delivered, suspicious)]
    assert verify == ["pending", "pending", "pending"]


@pytest.mark.django_db
def test_no_partial_rollback_returns_points_while_the_issued_code_is_used(api, member, metric, code_reward, writes):
    """Was: 300 + 199 of 500 points came back while the code stayed used."""
    Reward.objects.filter(pk=code_reward.pk).update(points=500)
    loyalty.credit_points(member=member, metric=metric, amount=500, actor=SYSTEM)
    red = redeem(api, member, Reward.objects.get(pk=code_reward.pk))
    use = use_code(api, member, red["issued_code"])
    before = writes()
    for points in (300, 199, 1):
        assert_error(rollback(api, red["id"], points=points), 409, "code_already_used")
    assert_error(rollback(api, red["id"]), 409, "code_already_used")
    assert writes() == before and balance(member) == 0
    # once the code use itself is rolled back, the redemption may be
    undo = api.post(f"{BASE}/code-redemptions/{use}/rollback", {"reason": "order canceled"}, format="json")
    assert undo.status_code == 200, undo.content
    assert rollback(api, red["id"], points=300).json()["status"] == "executed"
    assert balance(member) == 300 and verify_ledger().ok


@pytest.mark.django_db
def test_a_full_rollback_beside_a_pending_partial_is_refused_and_no_point_is_lost(
    api, lead, approver, member, metric, reward, writes
):
    """Was: the full one executed for the remainder and canceled the redemption; approving the pending
    partial then failed, and the member had spent 1000 and got 300 back."""
    loyalty.credit_points(member=member, metric=metric, amount=1000, actor=SYSTEM)
    red = redeem(api, member, reward(points=1000))
    pending = rollback(lead, red["id"], reason="fraud", points=700).json()
    assert pending["status"] == "pending_approval"
    before = writes()
    assert_error(rollback(api, red["id"]), 409, "rollback_pending")
    assert_error(rollback(api, red["id"], points=100), 409, "rollback_pending")
    assert writes() == before
    assert approver.post(f"{BASE}/rollbacks/{pending['id']}/approve", {}, format="json").json()["status"] == "executed"
    rest = rollback(api, red["id"]).json()
    assert (rest["status"], rest["points_returned"]) == ("executed", 300)
    body = api.get(f"{BASE}/redemptions/{red['id']}/").json()
    assert (body["status"], body["points_returned"]) == ("canceled", 1000)
    assert balance(member) == 1000 and verify_ledger().ok


@pytest.mark.django_db
def test_the_approval_threshold_counts_everything_returned_and_pending(api, member, metric, reward, policy, writes):
    """Was: two rollbacks of 200 each executed where the policy says more than 300 needs a second person."""
    policy.rollback_approval_above_points = 300
    policy.save()
    loyalty.credit_points(member=member, metric=metric, amount=500, actor=SYSTEM)
    red = redeem(api, member, reward(points=500))
    assert rollback(api, red["id"], points=200).json()["status"] == "executed"
    second = rollback(api, red["id"], points=200).json()
    assert second["status"] == "pending_approval" and "400 points in total > 300" in second["approval_required_because"]
    assert balance(member) == 200
    # a cancel of the rest would return 500 in all: it needs the second person too, so it is refused
    before = writes()
    assert_error(rollback(api, red["id"]), 409, "rollback_pending")
    resp = api.post(f"{BASE}/redemptions/{red['id']}/status", {"status": "canceled"}, format="json")
    assert_error(resp, 409, "rollback_pending")
    assert writes() == before


@pytest.mark.django_db
def test_cancel_that_needs_a_second_person_is_refused_with_a_pointer_to_rollbacks(
    api, member, metric, reward, policy, writes
):
    policy.rollback_approval_above_points = 300
    policy.save()
    loyalty.credit_points(member=member, metric=metric, amount=500, actor=SYSTEM)
    red = redeem(api, member, reward(points=500))
    before = writes()
    resp = api.post(f"{BASE}/redemptions/{red['id']}/status", {"status": "canceled"}, format="json")
    assert_error(resp, 422, "rollback_approval_required")
    assert "request a rollback" in resp.json()["detail"].lower()
    assert resp.json()["errors"] == {"approval_required_because": ["500 points > 300"]}
    assert writes() == before
    # the rollback request is the way: it waits for the approver
    assert rollback(api, red["id"]).json()["status"] == "pending_approval"
