"""Retro claims through the v1 API: the seed 002 scenario end to end, four-eyes, and every refusal."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from loyalty import roles
from loyalty.models import LedgerEntry, MemberTracker, Transaction
from loyalty.selectors import verify_ledger
from retro.models import RetroClaim
from tests.helpers import BASE, BY_TIER, FIXED, api_client_for, assert_error, d, make_user, ok


@pytest.fixture
def writes(db):
    def snapshot():
        return (
            RetroClaim.objects.count(),
            LedgerEntry.objects.count(),
            MemberTracker.objects.count(),
            Transaction.objects.filter(member__isnull=False).count(),
        )

    return snapshot


@pytest.fixture
def seed_world(campaign_manager, api, metric, tiers):
    """Seed 002 through the API: retro on; rules by tier from 2023-01-01; member Silver on 2023-05-20;
    a non-loyalty purchase that day; on 2023-08-10 a new rule version and the member moves to Gold."""
    ok(campaign_manager.patch(f"{BASE}/program/", {"retro_enabled": True}, format="json"))
    with time_machine.travel(d(2023, 1, 1), tick=False):
        spring = ok(
            campaign_manager.post(
                f"{BASE}/rule-sets/",
                {"name": "Spring", "valid_from": "2023-01-01T00:00:00Z", "rules": [BY_TIER]},
                format="json",
            ),
            201,
        )
        ok(campaign_manager.post(f"{BASE}/rule-sets/{spring['id']}/publish"))
        ok(
            api.post(
                f"{BASE}/members/",
                {"external_id": "SEED", "email": "seed@example.com", "tier": "SILVER"},
                format="json",
            ),
            201,
        )
    with time_machine.travel(d(2023, 5, 20, 14), tick=False):
        bill = ok(
            api.post(
                f"{BASE}/transactions/",
                {
                    "external_id": "BILL-0520",
                    "occurred_at": "2023-05-20T16:00:00+02:00",
                    "amount": "300.00",
                    "currency": "EUR",
                    "store": "AMS-1",
                },
                format="json",
            ),
            201,
        )
        assert bill["non_loyalty"] is True and bill["points_earned"] == 0
    with time_machine.travel(d(2023, 8, 10), tick=False):
        new = ok(campaign_manager.post(f"{BASE}/rule-sets/{spring['id']}/new-version", {}, format="json"), 201)
        ok(campaign_manager.patch(f"{BASE}/rule-sets/{new['id']}/", {"rules": [{**FIXED, "points": 5}]}, format="json"))
        ok(campaign_manager.post(f"{BASE}/rule-sets/{new['id']}/publish"))
        ok(api.post(f"{BASE}/members/SEED/tier", {"tier": "GOLD", "reason": "big purchase"}, format="json"), 201)
    return spring, new


def file_claim(client, transaction="BILL-0520", member="SEED", headers=None, **extra):
    body = {"transaction": transaction, "member": member, **extra}
    return client.post(f"{BASE}/retro-claims/", body, format="json", headers=headers)


@pytest.mark.django_db
def test_seed_scenario_end_to_end(
    seed_world, support, approver, approver_user, api, django_capture_on_commit_callbacks
):
    spring, _ = seed_world
    with time_machine.travel(d(2023, 8, 17, 9), tick=False):
        # support finds the older purchase, then files the claim
        found = ok(api.get(f"{BASE}/transactions/", {"non_loyalty": "true", "store": "AMS-1"}))["results"]
        assert [t["external_id"] for t in found] == ["BILL-0520"]
        claim = ok(file_claim(support, note="forgot card"), 201)
        assert (claim["status"], claim["channel"], claim["requested_by"], claim["note"]) == (
            "submitted",
            "api",
            "sally",
            "forgot card",
        )
        assert claim["preview"]["points"] == 45  # Silver 15% of 300, by the May rules
        breakdown = claim["preview"]["breakdown"]
        assert breakdown["tier"] == "SILVER"
        assert breakdown["rule_set"] == {"id": spring["id"], "name": "Spring", "version": 1}
        assert [(r["rule"], r["points"]) for r in breakdown["rules"]] == [("Tier share", 45)]
        assert claim["points_awarded"] is None and claim["ledger_entry"] is None
        with django_capture_on_commit_callbacks(execute=True):
            approved = ok(approver.post(f"{BASE}/retro-claims/{claim['id']}/approve"))
        assert approved["approved_by"] == "alex"
    done = ok(approver.get(f"{BASE}/retro-claims/{claim['id']}/"))
    assert (done["status"], done["points_awarded"], done["error"]) == ("processed", 45, "")
    assert done["breakdown"]["tier"] == "SILVER" and done["breakdown"]["rule_set"]["name"] == "Spring"
    assert dt.datetime.fromisoformat(done["processed_at"]) == d(2023, 8, 17, 9)
    entry = LedgerEntry.objects.get(pk=done["ledger_entry"])
    assert (entry.kind, entry.amount, entry.effective_at) == ("retro", 45, d(2023, 5, 20, 14))
    ledger = ok(api.get(f"{BASE}/members/SEED/ledger/", {"kind": "retro"}))["results"]
    assert [(e["id"], e["amount"]) for e in ledger] == [(done["ledger_entry"], 45)]
    [balance] = ok(api.get(f"{BASE}/members/SEED/balances/"))
    assert balance["balance"] == 45
    bill = ok(api.get(f"{BASE}/transactions/BILL-0520/"))
    assert (bill["member"], bill["points_earned"], bill["non_loyalty"]) == ("SEED", 45, False)
    # the purchase counts in the tracker of the processing period (2023, counted on 2023-08-17)
    tracker = MemberTracker.objects.get(member__external_id="SEED")
    assert tracker.period_start == d(2023, 1, 1) and (tracker.spend, tracker.purchases) == (Decimal("300.00"), 1)
    assert [m.subject for m in mail.outbox] == ["45 points added for your purchase BILL-0520"]
    assert verify_ledger().ok
    # listing and filters
    listed = ok(approver.get(f"{BASE}/retro-claims/", {"status": "processed", "member": "SEED"}))["results"]
    assert [c["id"] for c in listed] == [claim["id"]]
    assert ok(approver.get(f"{BASE}/retro-claims/", {"status": "submitted"}))["results"] == []
    assert ok(approver.get(f"{BASE}/retro-claims/", {"member": "NOBODY"}))["results"] == []
    assert len(ok(approver.get(f"{BASE}/retro-claims/", {"created_after": "2023-08-17T00:00:00Z"}))["results"]) == 1
    assert ok(approver.get(f"{BASE}/retro-claims/", {"created_before": "2023-08-17T00:00:00Z"}))["results"] == []
    assert_error(approver.get(f"{BASE}/retro-claims/", {"status": "lost"}), 400, "invalid", "status")
    # a second approval is a state conflict
    assert_error(approver.post(f"{BASE}/retro-claims/{claim['id']}/approve"), 409, "invalid_transition")


@pytest.mark.django_db
def test_four_eyes_and_only_approvers_approve(seed_world, support, writes):
    lead = make_user("lead", roles.SUPPORT_AGENT, roles.APPROVER)
    both = api_client_for(lead)
    with time_machine.travel(d(2023, 8, 17), tick=False):
        claim = ok(file_claim(both), 201)
        before = writes()
        assert_error(both.post(f"{BASE}/retro-claims/{claim['id']}/approve"), 422, "four_eyes_required")
        # rejecting your own claim is deciding it too (docs/roles.md): four-eyes
        assert_error(
            both.post(f"{BASE}/retro-claims/{claim['id']}/reject", {"reason": "mine"}, format="json"),
            422,
            "four_eyes_required",
        )
        assert_error(support.post(f"{BASE}/retro-claims/{claim['id']}/approve"), 403, "permission_denied")
        assert_error(
            support.post(f"{BASE}/retro-claims/{claim['id']}/reject", {"reason": "no"}, format="json"),
            403,
            "permission_denied",
        )
    assert writes() == before
    assert ok(support.get(f"{BASE}/retro-claims/{claim['id']}/"))["status"] == "submitted"
    assert not LedgerEntry.objects.filter(kind="retro").exists()


@pytest.mark.django_db
def test_reject_with_a_reason_frees_the_transaction(seed_world, support, approver):
    with time_machine.travel(d(2023, 8, 17), tick=False):
        claim = ok(file_claim(support), 201)
        assert_error(
            approver.post(f"{BASE}/retro-claims/{claim['id']}/reject", {}, format="json"), 400, "invalid", "reason"
        )
        rejected = ok(
            approver.post(f"{BASE}/retro-claims/{claim['id']}/reject", {"reason": "receipt unreadable"}, format="json")
        )
        assert (rejected["status"], rejected["rejected_by"], rejected["rejection_reason"]) == (
            "rejected",
            "alex",
            "receipt unreadable",
        )
        assert_error(approver.post(f"{BASE}/retro-claims/{claim['id']}/approve"), 409, "invalid_transition")
        again = ok(file_claim(support), 201)  # a rejected claim is not live: the bill can be claimed again
    assert again["id"] != claim["id"]
    assert not LedgerEntry.objects.filter(kind="retro").exists()


@pytest.mark.django_db
def test_refusals_each_carry_their_code_and_write_nothing(seed_world, campaign_manager, support, api, writes):
    with time_machine.travel(d(2023, 8, 17), tick=False):
        late = ok(api.post(f"{BASE}/members/", {"external_id": "LATE"}, format="json"), 201)
        owned = api.post(
            f"{BASE}/transactions/",
            {
                "external_id": "OWNED",
                "occurred_at": "2023-08-16T00:00:00Z",
                "amount": "10.00",
                "currency": "EUR",
                "member": "LATE",
            },
            format="json",
        )
        assert owned.status_code == 201 and late["external_id"] == "LATE"
    cases = [
        # (time, program change, body, status, code)
        (d(2023, 8, 19), {"retro_window_days": 30}, {}, 422, "retro_window_closed"),
        (d(2023, 8, 19), {"retro_enabled": False}, {}, 422, "retro_disabled"),
        (d(2023, 8, 17), {}, {"member": "LATE"}, 422, "before_enrolment"),
        (d(2023, 8, 17), {}, {"transaction": "OWNED"}, 409, "already_claimed"),
        (d(2023, 8, 17), {}, {"transaction": "NOPE"}, 400, "invalid"),
        (d(2023, 8, 17), {}, {"member": "NOPE"}, 400, "invalid"),
        (d(2023, 8, 17), {}, {"note": "x" * 1001}, 400, "invalid"),
    ]
    for when, program, body, status, code in cases:
        defaults = ok(campaign_manager.get(f"{BASE}/program/"))
        if program:
            ok(campaign_manager.patch(f"{BASE}/program/", program, format="json"))
        with time_machine.travel(when, tick=False):
            before = writes()
            assert_error(file_claim(support, **body), status, code)
            assert writes() == before, code
        ok(campaign_manager.patch(f"{BASE}/program/", {k: defaults[k] for k in program}, format="json"))
    # a duplicate live claim
    with time_machine.travel(d(2023, 8, 17), tick=False):
        ok(file_claim(support), 201)
        before = writes()
        assert_error(file_claim(support), 409, "already_claimed", "transaction")
        assert writes() == before
    assert RetroClaim.objects.count() == 1
    assert not LedgerEntry.objects.filter(kind="retro").exists()


@pytest.mark.django_db
def test_malformed_and_unauthorised_claims(seed_world, support, approver, auditor_user, writes):
    with time_machine.travel(d(2023, 8, 17), tick=False):
        before = writes()
        r = support.post(f"{BASE}/retro-claims/", data='{"transaction": ', content_type="application/json")
        assert_error(r, 400, "malformed_request")
        r = support.post(f"{BASE}/retro-claims/", {}, format="json")
        assert_error(r, 400, "invalid")
        assert set(r.json()["errors"]) == {"transaction", "member"}
        assert_error(file_claim(approver), 403, "permission_denied")  # approvers approve, they don't file
        auditor = api_client_for(auditor_user)
        assert_error(file_claim(auditor), 403, "permission_denied")
        assert ok(auditor.get(f"{BASE}/retro-claims/"))["count"] == 0
        assert_error(approver.get(f"{BASE}/retro-claims/99999/"), 404, "not_found")
        assert_error(approver.post(f"{BASE}/retro-claims/99999/approve"), 404, "not_found")
    assert writes() == before


@pytest.mark.django_db
def test_idempotent_claim_and_approval(seed_world, support, approver, django_capture_on_commit_callbacks):
    with time_machine.travel(d(2023, 8, 17), tick=False):
        first = file_claim(support, headers={"Idempotency-Key": "call-1"})
        again = file_claim(support, headers={"Idempotency-Key": "call-1"})
        assert first.status_code == again.status_code == 201 and again.json() == first.json()
        claim_id = first.json()["id"]
        with django_capture_on_commit_callbacks(execute=True):
            a1 = approver.post(f"{BASE}/retro-claims/{claim_id}/approve", HTTP_IDEMPOTENCY_KEY="ok-1")
            a2 = approver.post(f"{BASE}/retro-claims/{claim_id}/approve", HTTP_IDEMPOTENCY_KEY="ok-1")
        assert a1.status_code == a2.status_code == 200 and a2["Idempotent-Replayed"] == "true"
    assert RetroClaim.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="retro").count() == 1
    assert ok(approver.get(f"{BASE}/retro-claims/{claim_id}/"))["status"] == "processed"


@pytest.mark.django_db
def test_auto_approval_below_the_threshold(seed_world, campaign_manager, support, django_capture_on_commit_callbacks):
    ok(campaign_manager.patch(f"{BASE}/program/", {"retro_auto_approve_below_points": 100}, format="json"))
    with time_machine.travel(d(2023, 8, 17), tick=False), django_capture_on_commit_callbacks(execute=True):
        claim = ok(file_claim(support), 201)
    done = ok(support.get(f"{BASE}/retro-claims/{claim['id']}/"))
    assert done["auto_approved"] is True and done["approved_by"] is None and done["status"] == "processed"
    assert done["points_awarded"] == 45


@pytest.mark.django_db
def test_failed_processing_shows_the_error_and_can_be_retried(
    seed_world, support, approver, api, django_capture_on_commit_callbacks
):
    with time_machine.travel(d(2023, 8, 17), tick=False):
        claim = ok(file_claim(support), 201)
        ok(api.patch(f"{BASE}/members/SEED/", {"status": "suspended"}, format="json"))
        with django_capture_on_commit_callbacks(execute=True):
            ok(approver.post(f"{BASE}/retro-claims/{claim['id']}/approve"))
        failed = ok(approver.get(f"{BASE}/retro-claims/{claim['id']}/"))
        assert failed["status"] == "failed" and "suspended" in failed["error"] and failed["points_awarded"] is None
        ok(api.patch(f"{BASE}/members/SEED/", {"status": "active"}, format="json"))
        with django_capture_on_commit_callbacks(execute=True):
            ok(approver.post(f"{BASE}/retro-claims/{claim['id']}/approve"))
    done = ok(approver.get(f"{BASE}/retro-claims/{claim['id']}/"))
    assert done["status"] == "processed" and done["error"] == "" and done["points_awarded"] == 45


@pytest.mark.django_db
def test_openapi_schema_lists_the_retro_endpoints(api):
    paths = set(api.get(reverse("schema"), {"format": "json"}).json()["paths"])
    for p in [
        "/api/v1/retro-claims/",
        "/api/v1/retro-claims/{id}/",
        "/api/v1/retro-claims/{id}/approve",
        "/api/v1/retro-claims/{id}/reject",
    ]:
        assert p in paths, p
