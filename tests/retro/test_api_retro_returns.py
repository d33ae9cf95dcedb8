"""Retro claims earn on what the customer kept (issue 12): the bill net of its returns, at preview and
again at processing (a return can land in between); a bill returned in full earns nothing; tier
spend counts the net amount; later returns take back only their share of what was earned."""

from __future__ import annotations

from decimal import Decimal

import pytest
import time_machine

from loyalty.models import LedgerEntry, MemberTracker, PointBalance
from loyalty.selectors import verify_ledger
from retro.models import RetroClaim
from tests.helpers import BASE, FIXED, assert_error, d, ok

PER_EURO = {"name": "Per euro", "metric": "points", "action": "per_amount", "points": 1, "unit_amount": "1.00"}
NOW = d(2024, 3, 10, 12)


@pytest.fixture
def world(api, campaign_manager, metric, tiers):
    """Retro on; 10 points per purchase + 1 per euro; member SEED; a non-loyalty 100.00 bill."""
    manager = campaign_manager
    with time_machine.travel(d(2024, 1, 1), tick=False):
        ok(manager.patch(f"{BASE}/program/", {"retro_enabled": True}, format="json"))
        rules = ok(
            manager.post(
                f"{BASE}/rule-sets/",
                {"name": "Base", "valid_from": "2024-01-01T00:00:00Z", "rules": [{**FIXED, "points": 10}, PER_EURO]},
                format="json",
            ),
            201,
        )
        ok(manager.post(f"{BASE}/rule-sets/{rules['id']}/publish"))
        ok(api.post(f"{BASE}/members/", {"external_id": "SEED", "email": "s@example.com"}, format="json"), 201)
    with time_machine.travel(d(2024, 3, 1, 12), tick=False):
        bill = {"external_id": "B-1", "occurred_at": "2024-03-01T12:00:00Z", "amount": "100.00", "currency": "EUR"}
        ok(api.post(f"{BASE}/transactions/", bill, format="json"), 201)


def give_back(api, amount):
    return ok(api.post(f"{BASE}/transactions/B-1/return", {"amount": amount, "reason": "returned"}, format="json"), 201)


def file_claim(client):
    return client.post(f"{BASE}/retro-claims/", {"transaction": "B-1", "member": "SEED"}, format="json")


def approve(approver, claim_id, capture):
    with capture(execute=True):
        ok(approver.post(f"{BASE}/retro-claims/{claim_id}/approve"))
    return ok(approver.get(f"{BASE}/retro-claims/{claim_id}/"))


def points():
    return PointBalance.objects.get(member__external_id="SEED").balance


def spend():
    return MemberTracker.objects.get(member__external_id="SEED").spend


@pytest.mark.django_db
def test_a_mostly_returned_bill_is_previewed_and_credited_on_what_was_kept(
    world, api, support, approver, django_capture_on_commit_callbacks
):
    """Was: 100.00 bill, 99.00 returned, 110 points."""
    with time_machine.travel(NOW, tick=False):
        give_back(api, "99.00")
        claim = ok(file_claim(support), 201)
        assert claim["preview"]["points"] == 11  # 10 + 1 per euro of the 1.00 kept
        assert claim["preview"]["breakdown"]["amount"] == "1.00"
        done = approve(approver, claim["id"], django_capture_on_commit_callbacks)
    assert (done["status"], done["points_awarded"]) == ("processed", 11)
    assert points() == 11 and spend() == Decimal("1.00")
    assert verify_ledger().ok


@pytest.mark.django_db
def test_a_return_between_filing_and_processing_is_taken_off_at_processing(
    world, api, support, approver, django_capture_on_commit_callbacks
):
    with time_machine.travel(NOW, tick=False):
        claim = ok(file_claim(support), 201)
        assert claim["preview"]["points"] == 110
        give_back(api, "50.00")
        done = approve(approver, claim["id"], django_capture_on_commit_callbacks)
        assert (done["status"], done["points_awarded"]) == ("processed", 60)  # 10 + 50 on the 50.00 kept
        assert done["breakdown"]["amount"] == "50.00" and done["breakdown"]["returned_before_earning"] == "50.00"
        assert points() == 60 and spend() == Decimal("50.00")
        # a later return takes back its share of what was earned on the 50.00, not of the bill
        ret = give_back(api, "25.00")
        assert ret["points_reversed"] == 30
        assert points() == 30 and spend() == Decimal("25.00")
        ret = give_back(api, "25.00")  # the rest: everything earned comes back
        assert ret["points_reversed"] == 30
    assert points() == 0 and spend() == Decimal("0")
    assert verify_ledger().ok


@pytest.mark.django_db
def test_a_bill_returned_in_full_earns_nothing(world, api, support, approver, django_capture_on_commit_callbacks):
    with time_machine.travel(NOW, tick=False):
        claim = ok(file_claim(support), 201)
        give_back(api, "100.00")  # returned in full after the claim was filed
        done = approve(approver, claim["id"], django_capture_on_commit_callbacks)
        assert (done["status"], done["points_awarded"]) == ("failed", None)
        assert "returned in full" in done["error"]
        assert not LedgerEntry.objects.filter(kind="retro").exists()
        assert not MemberTracker.objects.filter(member__external_id="SEED", spend__gt=0).exists()
        assert ok(api.get(f"{BASE}/transactions/B-1/"))["member"] is None
        # a new claim for it is refused outright
        ok(approver.post(f"{BASE}/retro-claims/{claim['id']}/reject", {"reason": "returned"}, format="json"))
        assert_error(file_claim(support), 409, "already_returned")
    assert RetroClaim.objects.count() == 1 and verify_ledger().ok
