"""The v1 API for campaigns and codes: happy paths, stacking, windows, limits, eligibility, brute force,
bad input in the error shape with nothing written, idempotency, timelines and QR images."""

import datetime as dt
import json
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import IdempotencyRecord, LedgerEntry, Segment
from promotions import services
from promotions.models import (
    AbuseSignal,
    Campaign,
    CampaignMemberUsage,
    Code,
    CodeBatch,
    CodeEvent,
    CodeRedemption,
)
from tests.helpers import BASE, api_client_for, assert_error, make_user

T0 = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
T1 = dt.datetime(2026, 6, 30, 12, tzinfo=dt.UTC)
TICK = dt.timedelta(microseconds=1)
STACK = {"stacking": "stackable", "stack_group": "spring", "max_codes_per_order": 2}


def body(codes, member=None, amount="100.00", channel="online", order_id="o-1"):
    data = {"codes": codes, "order": {"id": order_id, "amount": amount, "channel": channel}}
    if member is not None:
        data["member"] = member
    return data


def validate(client, *args, **kwargs):
    return client.post(f"{BASE}/codes/validate", body(*args, **kwargs), format="json")


def redeem(client, *args, headers=None, **kwargs):
    return client.post(f"{BASE}/codes/redeem", body(*args, **kwargs), format="json", headers=headers)


def reasons(response):
    assert response.status_code == 200, response.content
    return [c["reason"] for c in response.json()["codes"]]


@pytest.fixture
def manager_api(manager):
    return api_client_for(manager)


@pytest.fixture
def named(make_campaign, manager):
    """A named code in a campaign of its own: named("CODE", campaign_fields..., code=dict(...))."""

    def make(code, *, code_fields=None, **campaign_fields):
        campaign_fields.setdefault("name", f"Campaign {code}")
        campaign = make_campaign(**campaign_fields)
        return services.create_named_code(campaign=campaign, code=code, actor=manager, **(code_fields or {}))

    return make


@pytest.fixture
def writes(db):
    """Counts of every table a bad request could touch, and the budget counters."""

    def snapshot():
        counters = [
            (c.redemptions_count, c.discount_total, c.bonus_points_total) for c in Campaign.objects.order_by("pk")
        ]
        return (
            Campaign.objects.count(),
            Campaign.history.count(),
            CodeBatch.objects.count(),
            Code.objects.count(),
            list(Code.objects.order_by("pk").values_list("uses", "status")),
            CodeEvent.objects.count(),
            CodeRedemption.objects.count(),
            CampaignMemberUsage.objects.count(),
            AbuseSignal.objects.count(),
            LedgerEntry.objects.count(),
            counters,
        )

    return snapshot


# --- campaigns ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_read_and_patch_a_campaign_with_nested_eligibility(manager_api, tiers, metric):
    Segment.objects.create(code="vip", name="VIP")
    r = manager_api.post(
        f"{BASE}/campaigns/",
        {
            "name": "Summer",
            "kind": "percent_discount",
            "value": "15",
            "status": "active",
            "starts_at": "2026-06-01T00:00:00+02:00",
            "per_member_limit": 2,
            "stacking": "stackable",
            "stack_group": "summer",
            "max_codes_per_order": 3,
            "code_pattern": "SUM-####-????",
            "eligibility": {"tiers": ["GOLD", "SILVER"], "segments": ["vip"], "min_order_amount": "20"},
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    c = r.json()
    assert (c["status"], c["value"], c["stacking"], c["max_codes_per_order"]) == ("active", "15.00", "stackable", 3)
    assert c["eligibility"] == {
        "tiers": ["GOLD", "SILVER"],
        "segments": ["vip"],
        "min_order_amount": "20.00",
        "channels": [],
    }
    assert (c["redemptions_count"], c["discount_total"]) == (0, "0.00")
    assert c["stats"]["codes"] == {"total": 0, "used": 0, "void": 0, "expired": 0}
    url = f"{BASE}/campaigns/{c['id']}/"
    # a partial eligibility change keeps the rest
    r = manager_api.patch(url, {"eligibility": {"channels": ["pos"], "min_order_amount": None}}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["eligibility"] == {
        "tiers": ["GOLD", "SILVER"],
        "segments": ["vip"],
        "min_order_amount": None,
        "channels": ["pos"],
    }
    r = manager_api.patch(url, {"status": "paused", "reason": "stock ran out"}, format="json")
    assert r.json()["status"] == "paused"
    assert Campaign.history.filter(id=c["id"]).first().history_change_reason == "stock ran out"
    assert manager_api.patch(url, {"status": "paused"}, format="json").status_code == 200  # already there: no-op
    assert_error(manager_api.patch(url, {"status": "draft"}, format="json"), 409, "invalid_transition", "status")
    assert [x["id"] for x in manager_api.get(f"{BASE}/campaigns/", {"status": "paused"}).json()["results"]] == [c["id"]]
    assert manager_api.get(f"{BASE}/campaigns/", {"status": "active"}).json()["count"] == 0
    r = manager_api.patch(url, {"status": "ended", "name": "Summer (over)"}, format="json")
    assert (r.json()["status"], r.json()["name"]) == ("ended", "Summer (over)")
    assert_error(manager_api.patch(url, {"name": "Again"}, format="json"), 409, "invalid_transition")


@pytest.mark.django_db
def test_a_failed_status_change_in_a_patch_changes_nothing(manager_api, make_campaign):
    campaign = make_campaign(status="draft")
    r = manager_api.patch(f"{BASE}/campaigns/{campaign.pk}/", {"name": "Renamed", "status": "paused"}, format="json")
    assert_error(r, 409, "invalid_transition")
    campaign.refresh_from_db()
    assert (campaign.name, campaign.status) == ("Spring sale", "draft")


@pytest.mark.django_db
def test_a_budget_below_what_was_already_used_is_refused(manager_api, make_campaign):
    campaign = make_campaign(max_redemptions=10, max_discount_total=Decimal("100.00"))
    Campaign.objects.filter(pk=campaign.pk).update(redemptions_count=3, discount_total=Decimal("15.00"))
    url = f"{BASE}/campaigns/{campaign.pk}/"
    for body, field in (
        ({"max_redemptions": 0}, "max_redemptions"),
        ({"max_redemptions": 2, "name": "Lower"}, "max_redemptions"),
        ({"max_discount_total": "14.99"}, "max_discount_total"),
    ):
        assert_error(manager_api.patch(url, body, format="json"), 400, "invalid", field)
    campaign.refresh_from_db()
    assert (campaign.name, campaign.max_redemptions, campaign.max_discount_total) == (
        "Spring sale",
        10,
        Decimal("100.00"),
    )
    # down to exactly what was used closes the budget; no budget at all is fine too
    r = manager_api.patch(url, {"max_redemptions": 3, "max_discount_total": "15.00"}, format="json")
    assert (r.json()["max_redemptions"], r.json()["max_discount_total"]) == (3, "15.00")
    assert manager_api.patch(url, {"max_redemptions": None}, format="json").json()["max_redemptions"] is None


@pytest.mark.django_db
def test_campaign_permissions(api, manager, make_campaign, auditor_user):
    campaign = make_campaign()
    assert api.get(f"{BASE}/campaigns/{campaign.pk}/").status_code == 200  # Integration reads campaigns
    new = {"name": "X", "kind": "fixed_discount", "value": "5"}
    assert_error(api.post(f"{BASE}/campaigns/", new, format="json"), 403, "permission_denied")
    auditor = api_client_for(auditor_user)
    assert_error(
        auditor.patch(f"{BASE}/campaigns/{campaign.pk}/", {"name": "Y"}, format="json"), 403, "permission_denied"
    )
    assert_error(APIClient().get(f"{BASE}/campaigns/"), 401, "not_authenticated")
    assert_error(api.get(f"{BASE}/campaigns/999999/"), 404, "not_found")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data,field",
    [
        ({"value": "0"}, "value"),
        ({"value": "-5"}, "value"),
        ({"value": "150"}, "value"),  # a percentage is at most 100
        ({"kind": "free_lunch"}, "kind"),
        ({"name": ""}, "name"),
        ({"starts_at": "2026-06-02T00:00:00Z", "ends_at": "2026-06-01T00:00:00Z"}, "ends_at"),
        ({"eligibility": {"tiers": ["DIAMOND"]}}, "eligibility"),
        ({"eligibility": {"channels": [7]}}, "eligibility"),
        ({"eligibility": {"min_order_amount": "-1"}}, "eligibility"),
        ({"eligibility": "gold only"}, "eligibility"),
        ({"max_codes_per_order": 0}, "max_codes_per_order"),
        ({"stacking": "sometimes"}, "stacking"),
        ({"code_pattern": "NOPLACEHOLDERS"}, "code_pattern"),
        ({"status": "paused"}, None),  # draft -> paused is not a transition: 409 below
    ],
)
def test_bad_campaigns_are_refused_and_nothing_is_written(manager_api, tiers, metric, writes, data, field):
    before = writes()
    r = manager_api.post(
        f"{BASE}/campaigns/", {"name": "Bad", "kind": "percent_discount", "value": "10", **data}, format="json"
    )
    if field is None:
        assert_error(r, 409, "invalid_transition")
    else:
        assert_error(r, 400, "invalid", field)
    assert writes() == before


# --- code batches and named codes ---------------------------------------------------------------


@pytest.mark.django_db
def test_code_batch_generation_through_the_api_completes(
    manager_api, make_campaign, django_capture_on_commit_callbacks
):
    campaign = make_campaign(code_pattern="SPR-****-****")
    with django_capture_on_commit_callbacks(execute=True):
        r = manager_api.post(f"{BASE}/campaigns/{campaign.pk}/code-batches/", {"count": 120}, format="json")
    assert r.status_code == 202, r.content
    batch = r.json()
    assert (batch["campaign"], batch["count"], batch["pattern"], batch["created_by"]) == (
        campaign.pk,
        120,
        "SPR-****-****",
        "cm",
    )
    r = manager_api.get(f"{BASE}/code-batches/{batch['id']}/")
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["generated"], r.json()["count"], r.json()["progress"]) == (
        "completed",
        120,
        120,
        1.0,
    )
    assert [b["id"] for b in manager_api.get(f"{BASE}/campaigns/{campaign.pk}/code-batches/").json()["results"]] == [
        batch["id"]
    ]
    listed = manager_api.get(f"{BASE}/codes/", {"batch": batch["id"], "status": "active", "page_size": 500}).json()
    assert listed["count"] == 120 and all(c["code"].startswith("SPR-") for c in listed["results"])
    ids = [c["id"] for c in listed["results"]]
    assert ids == sorted(ids, reverse=True)


@pytest.mark.django_db
def test_a_batch_for_a_segment_assigns_one_code_per_member(
    manager_api, make_campaign, tiers, django_capture_on_commit_callbacks
):
    members = [loyalty.enroll_member(external_id=f"S{i}", email=f"s{i}@example.com", actor=SYSTEM) for i in range(3)]
    Segment.objects.create(code="vip", name="VIP").members.set(members)
    campaign = make_campaign()
    with django_capture_on_commit_callbacks(execute=True):
        r = manager_api.post(
            f"{BASE}/campaigns/{campaign.pk}/code-batches/", {"segment": "vip", "length": 10}, format="json"
        )
    assert r.status_code == 202, r.content
    assert r.json()["count"] == 3 and r.json()["segment"] == "vip"
    r = manager_api.get(f"{BASE}/codes/", {"assigned_member": "S1"})
    assert r.json()["count"] == 1 and r.json()["results"][0]["assigned_member"] == "S1"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data,field",
    [
        ({"count": 0}, "count"),
        ({"count": 10**9}, "count"),
        ({"count": -3}, "count"),
        ({"count": "lots"}, "count"),
        ({}, "count"),
        ({"count": 100, "pattern": "WELCOME-##"}, "pattern"),  # 64 possible codes: guessable
        ({"count": 10, "length": 10, "charset": "AA"}, "pattern"),
        ({"count": 10, "length": 0}, "length"),
        ({"count": 10, "length": 10, "max_uses": 0}, "max_uses"),
        ({"count": 10, "length": 10, "email_members": True}, "email_members"),
        ({"segment": "nope", "length": 10}, "segment"),
        (
            {"count": 10, "length": 10, "release_at": "2026-06-02T00:00:00Z", "valid_until": "2026-06-01T00:00:00Z"},
            "valid_until",
        ),
    ],
)
def test_bad_batches_are_a_400_and_write_nothing(manager_api, make_campaign, writes, data, field):
    campaign = make_campaign()
    before = writes()
    assert_error(
        manager_api.post(f"{BASE}/campaigns/{campaign.pk}/code-batches/", data, format="json"), 400, "invalid", field
    )
    assert writes() == before


@pytest.mark.django_db
def test_batches_and_named_codes_need_generate_codes(api, make_campaign, writes):
    campaign = make_campaign()
    before = writes()
    r = api.post(f"{BASE}/campaigns/{campaign.pk}/code-batches/", {"count": 5, "length": 10}, format="json")
    assert_error(r, 403, "permission_denied")
    assert_error(
        api.post(f"{BASE}/campaigns/{campaign.pk}/codes/", {"code": "X1"}, format="json"), 403, "permission_denied"
    )
    assert writes() == before


@pytest.mark.django_db
def test_named_code_create_lookup_and_list_filters(manager_api, api, make_campaign, member):
    campaign = make_campaign()
    url = f"{BASE}/campaigns/{campaign.pk}/codes/"
    r = manager_api.post(
        url,
        {"code": "welcome-10", "max_uses": 100, "assigned_member": "M-1", "valid_until": "2030-01-01T00:00:00Z"},
        format="json",
    )
    assert r.status_code == 201, r.content
    assert (r.json()["code"], r.json()["normalized"], r.json()["max_uses"], r.json()["assigned_member"]) == (
        "WELCOME-10",
        "WELCOME10",
        100,
        "M-1",
    )
    assert_error(manager_api.post(url, {"code": "Welcome 10"}, format="json"), 409, "already_exists", "code")
    assert_error(
        manager_api.post(url, {"code": "X2", "assigned_member": "NOPE"}, format="json"),
        400,
        "invalid",
        "assigned_member",
    )
    assert_error(manager_api.post(url, {"code": 12345}, format="json"), 400, "invalid", "code")
    assert_error(manager_api.post(url, {"code": "<script>"}, format="json"), 400, "invalid", "code")
    assert_error(manager_api.post(f"{BASE}/campaigns/999999/codes/", {"code": "X3"}, format="json"), 404, "not_found")
    r = api.get(f"{BASE}/codes/welcome_10/")  # case and separators do not matter
    assert r.status_code == 200
    detail = r.json()
    assert (detail["code"], detail["campaign"], detail["campaign_name"], detail["uses"], detail["max_uses"]) == (
        "WELCOME-10",
        campaign.pk,
        "Spring sale",
        0,
        100,
    )
    assert detail["valid_until"].startswith("2030-01-01") and detail["assigned_member"] == "M-1"
    assert [e["kind"] for e in detail["timeline"]] == ["generated", "created"]
    assert api.get(f"{BASE}/codes/", {"assigned_member": "M-1"}).json()["count"] == 1
    assert api.get(f"{BASE}/codes/", {"assigned_member": "NOPE"}).json()["count"] == 0
    assert api.get(f"{BASE}/codes/", {"campaign": campaign.pk, "status": "active"}).json()["count"] == 1
    assert api.get(f"{BASE}/codes/", {"status": "void"}).json()["count"] == 0
    assert_error(api.get(f"{BASE}/codes/", {"campaign": "abc"}), 400, "invalid", "campaign")
    assert_error(api.get(f"{BASE}/codes/", {"batch": str(10**30)}), 400, "invalid", "batch")
    assert_error(api.get(f"{BASE}/codes/", {"status": "lost"}), 400, "invalid", "status")
    assert_error(api.get(f"{BASE}/codes/NOPE/"), 404, "not_found")


@pytest.mark.django_db
def test_code_list_stays_cheap(api, make_campaign, manager, member):
    campaign = make_campaign()
    for i in range(30):
        services.create_named_code(campaign=campaign, code=f"LIST{i}", actor=manager, assigned_member=member)
    with CaptureQueriesContext(connection) as ctx:
        r = api.get(f"{BASE}/codes/", {"campaign": campaign.pk, "assigned_member": "M-1", "page_size": 10})
    assert r.status_code == 200 and r.json()["count"] == 30 and len(r.json()["results"]) == 10
    code_queries = [q["sql"] for q in ctx.captured_queries if '"promotions_code"' in q["sql"]]
    assert len(code_queries) == 2  # one count, one page: no query per row
    assert all(q.count("JOIN") <= 1 for q in code_queries)  # at most the select_related member


# --- validate and redeem ------------------------------------------------------------------------


@pytest.mark.django_db
def test_validate_then_redeem_then_roll_back_through_the_api(api, named, member):
    a = named("AAA-1", kind="percent_discount", value=10, **STACK)
    b = named("BBB-1", kind="fixed_discount", value=5, **STACK)
    r = validate(api, ["aaa1", "bbb 1"], member="M-1")
    assert r.json() == {
        "codes": [
            {"code": "AAA1", "valid": True, "reason": None, "discount": "10.00", "bonus_points": 0},
            {"code": "BBB1", "valid": True, "reason": None, "discount": "5.00", "bonus_points": 0},
        ],
        "applicable": ["AAA1", "BBB1"],
        "discount_total": "15.00",
        "bonus_points": 0,
    }
    assert not CodeRedemption.objects.exists()
    r = redeem(api, ["AAA-1", "BBB-1"], member="M-1")
    assert r.status_code == 201, r.content
    out = r.json()
    assert [(x["code"], x["discount"], x["bonus_points"]) for x in out["code_redemptions"]] == [
        ("AAA1", "10.00", 0),
        ("BBB1", "5.00", 0),
    ]
    assert (out["discount_total"], out["bonus_points"]) == ("15.00", 0)
    a.refresh_from_db()
    assert (a.uses, a.status, a.campaign.redemptions_count) == (1, "redeemed", 1)
    assert reasons(validate(api, ["AAA1"], member="M-1")) == ["code_already_used"]
    first = out["code_redemptions"][0]["id"]
    r = api.post(f"{BASE}/code-redemptions/{first}/rollback", {"reason": "order cancelled"}, format="json")
    assert r.status_code == 200, r.content
    assert (r.json()["status"], r.json()["rollback_reason"], r.json()["rolled_back_by"]) == (
        "rolled_back",
        "order cancelled",
        "pos",
    )
    assert_error(
        api.post(f"{BASE}/code-redemptions/{first}/rollback", {"reason": "again"}, format="json"),
        409,
        "invalid_transition",
    )
    a.refresh_from_db()
    assert (a.uses, a.status) == (0, "active")
    assert reasons(validate(api, ["AAA1"], member="M-1")) == [None]
    timeline = api.get(f"{BASE}/codes/aaa-1/").json()["timeline"]
    kinds = [e["kind"] for e in timeline]
    assert kinds[0] == "generated"
    for kind in ("validated", "redeemed", "rolled_back"):
        assert kind in kinds
    assert kinds.index("redeemed") < kinds.index("rolled_back")
    validated = next(e for e in timeline if e["kind"] == "validated")
    assert (validated["result"], validated["who"], validated["ip"], validated["member"], validated["order_id"]) == (
        "valid",
        "pos",
        "127.0.0.1",
        "M-1",
        "o-1",
    )
    b.refresh_from_db()
    assert b.uses == 1


@pytest.mark.django_db
def test_bonus_points_codes_credit_the_member(api, named, member, metric):
    named("BONUS", kind="bonus_points", value=250, metric=metric)
    r = validate(api, ["BONUS"])
    assert reasons(r) == ["not_eligible"]  # bonus points need a member
    r = redeem(api, ["BONUS"], member="M-1")
    assert r.status_code == 201 and (r.json()["bonus_points"], r.json()["discount_total"]) == (250, "0.00")
    assert LedgerEntry.objects.get(member=member).amount == 250


@pytest.mark.django_db
@pytest.mark.parametrize(
    "campaigns,codes,expected",
    [
        # exclusive codes refuse company
        ([{}, {}], ["C0", "C1"], [None, "stacking_not_allowed"]),
        ([{}, STACK], ["C0", "C1"], [None, "stacking_not_allowed"]),
        ([STACK, {}], ["C0", "C1"], [None, "stacking_not_allowed"]),
        # stackable codes combine up to the max of the group
        ([STACK, STACK], ["C0", "C1"], [None, None]),
        ([STACK, STACK, STACK], ["C0", "C1", "C2"], [None, None, "stacking_not_allowed"]),
        (
            [{**STACK, "max_codes_per_order": 3}] * 3,
            ["C0", "C1", "C2"],
            [None, None, None],
        ),
        # different stack groups do not mix
        ([STACK, {**STACK, "stack_group": "autumn"}], ["C0", "C1"], [None, "stacking_not_allowed"]),
        # the same code twice is not a stack
        ([STACK], ["C0", "c-0"], [None, "stacking_not_allowed"]),
        # a refused code does not take a place in the stack
        ([STACK, STACK, STACK], ["C0", "NOPE", "C1"], [None, "code_unknown", None]),
    ],
)
def test_stacking_combinations(api, make_campaign, manager, campaigns, codes, expected):
    for i, fields in enumerate(campaigns):
        campaign = make_campaign(name=f"C{i}", kind="fixed_discount", value=1, **fields)
        services.create_named_code(campaign=campaign, code=f"C{i}", actor=manager, max_uses=5)
    assert reasons(validate(api, codes)) == expected
    r = redeem(api, codes)
    if all(reason is None for reason in expected):
        assert r.status_code == 201 and len(r.json()["code_redemptions"]) == len(codes)
        assert Decimal(r.json()["discount_total"]) == len(codes)
    else:
        assert_error(r, 422, "codes_rejected", "codes")
        assert [c["reason"] for c in r.json()["errors"]["codes"]] == expected
        assert not CodeRedemption.objects.exists()


@pytest.mark.django_db
def test_a_stack_in_which_one_code_fails_redeems_nothing(api, named, manager, member, writes):
    named("GOOD", **STACK)
    bad = named("LEAKED", **STACK)
    services.void_code(code=bad, actor=manager, reason="leaked")
    before = writes()
    r = redeem(api, ["GOOD", "LEAKED"], member="M-1")
    assert_error(r, 422, "codes_rejected", "codes")
    assert r.json()["errors"]["codes"] == [
        {"code": "GOOD", "valid": True, "reason": None},
        {"code": "LEAKED", "valid": False, "reason": "code_void"},
    ]
    after = writes()
    # only the refused attempt is on the timeline (two validation events); nothing else moved
    assert after[5] == before[5] + 2
    assert after[:5] + after[6:] == before[:5] + before[6:]
    assert not CampaignMemberUsage.objects.filter(uses__gt=0).exists()


@pytest.mark.django_db
def test_code_windows_at_their_exact_boundaries(api, named):
    named("WINDOW", code_fields={"valid_from": T0, "valid_until": T1})
    expected = [
        (T0 - TICK, "code_not_yet_valid"),
        (T0, None),
        (T1 - TICK, None),
        (T1, "code_expired"),
    ]
    for when, reason in expected:
        with time_machine.travel(when, tick=False):
            assert reasons(validate(api, ["WINDOW"])) == [reason], when


@pytest.mark.django_db
def test_campaign_windows_at_their_exact_boundaries(api, named):
    named("CAMPAIGN", starts_at=T0, ends_at=T1)
    for when, reason in [(T0 - TICK, "code_not_yet_valid"), (T0, None), (T1 - TICK, None), (T1, "code_expired")]:
        with time_machine.travel(when, tick=False):
            assert reasons(validate(api, ["CAMPAIGN"])) == [reason], when
    with time_machine.travel(T1, tick=False):
        assert_error(redeem(api, ["CAMPAIGN"]), 422, "codes_rejected")
    with time_machine.travel(T1 - TICK, tick=False):
        assert redeem(api, ["CAMPAIGN"]).status_code == 201


@pytest.mark.django_db
def test_scheduled_release_of_a_batch_through_the_api(
    api, manager_api, make_campaign, django_capture_on_commit_callbacks
):
    campaign = make_campaign()
    with django_capture_on_commit_callbacks(execute=True):
        r = manager_api.post(
            f"{BASE}/campaigns/{campaign.pk}/code-batches/",
            {"count": 3, "length": 10, "release_at": T0.isoformat()},
            format="json",
        )
    assert r.status_code == 202, r.content
    code = Code.objects.filter(batch_id=r.json()["id"]).first().code
    with time_machine.travel(T0 - TICK, tick=False):
        assert reasons(validate(api, [code])) == ["code_not_yet_valid"]
        assert "released" not in [e["kind"] for e in api.get(f"{BASE}/codes/{code}/").json()["timeline"]]
    with time_machine.travel(T0, tick=False):
        assert reasons(validate(api, [code])) == [None]
        kinds = [e["kind"] for e in api.get(f"{BASE}/codes/{code}/").json()["timeline"]]
        assert "released" in kinds


@pytest.mark.django_db
def test_per_member_limits(api, named, tiers):
    loyalty.enroll_member(external_id="M-1", actor=SYSTEM)
    loyalty.enroll_member(external_id="M-2", actor=SYSTEM)
    named("TWICE", per_member_limit=2, code_fields={"max_uses": 10})
    assert redeem(api, ["TWICE"], member="M-1").status_code == 201
    assert redeem(api, ["TWICE"], member="M-1", order_id="o-2").status_code == 201
    assert reasons(validate(api, ["TWICE"], member="M-1")) == ["limit_reached"]
    r = redeem(api, ["TWICE"], member="M-1", order_id="o-3")
    assert_error(r, 422, "codes_rejected")
    assert r.json()["errors"]["codes"][0]["reason"] == "limit_reached"
    assert reasons(validate(api, ["TWICE"], member="M-2")) == [None]
    assert reasons(validate(api, ["TWICE"])) == ["not_eligible"]  # a per-member limit needs a member
    assert CampaignMemberUsage.objects.get(member__external_id="M-1").uses == 2


@pytest.mark.django_db
def test_eligibility_by_tier_segment_amount_and_channel(api, named, member, tiers):
    named("GOLDONLY", eligible_tiers=[tiers["GOLD"]])
    named("VIPONLY", eligible_segments=[Segment.objects.create(code="vip", name="VIP")])
    named("BIGORDER", min_order_amount=Decimal("100.00"))
    named("POSONLY", channels=["pos"])
    assert reasons(validate(api, ["GOLDONLY"], member="M-1")) == ["not_eligible"]  # M-1 is BRONZE
    assert reasons(validate(api, ["GOLDONLY"])) == ["not_eligible"]
    loyalty.change_tier(member=member, tier=tiers["GOLD"], actor=SYSTEM, reason="VIP")
    assert reasons(validate(api, ["GOLDONLY"], member="M-1")) == [None]
    assert reasons(validate(api, ["VIPONLY"], member="M-1")) == ["not_eligible"]
    Segment.objects.get(code="vip").members.add(member)
    assert reasons(validate(api, ["VIPONLY"], member="M-1")) == [None]
    assert reasons(validate(api, ["BIGORDER"], amount="99.99")) == ["not_eligible"]
    assert reasons(validate(api, ["BIGORDER"], amount="100.00")) == [None]
    assert reasons(validate(api, ["POSONLY"], channel="online")) == ["not_eligible"]
    assert reasons(validate(api, ["POSONLY"], channel="pos")) == [None]
    assert_error(redeem(api, ["POSONLY"], channel="online"), 422, "codes_rejected")
    assert redeem(api, ["POSONLY"], channel="pos").status_code == 201


@pytest.mark.django_db
def test_an_assigned_code_only_works_for_its_member(api, named, member, tiers):
    loyalty.enroll_member(external_id="M-2", actor=SYSTEM)
    named("MINE", code_fields={"assigned_member": member})
    assert reasons(validate(api, ["MINE"], member="M-2")) == ["not_eligible"]
    assert reasons(validate(api, ["MINE"], member="M-1")) == [None]


# --- brute force ----------------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(CODE_FAILED_VALIDATION_LIMIT=3, CODE_LOCKOUT_SECONDS=60)
def test_brute_force_gets_a_429_and_the_attempts_appear_as_anomalies(api, named, manager):
    named("REAL")
    for i in range(3):
        assert reasons(validate(api, [f"GUESS{i}"])) == ["code_unknown"]
    r = validate(api, ["REAL"])
    assert_error(r, 429, "too_many_attempts", "retry_after")
    assert_error(redeem(api, ["REAL"]), 429, "too_many_attempts")
    signals = AbuseSignal.objects.filter(kind="failed_validations")
    assert {(s.subject_type, s.subject) for s in signals} == {("client", "pos"), ("ip", "127.0.0.1")}
    assert all(s.count == 3 and s.locked_until for s in signals)
    assert CodeEvent.objects.filter(kind="validated", result="code_unknown", client="pos").count() == 3
    # another client from another address is not affected
    other = api_client_for(make_user("checkout", "Integration"))
    assert reasons(other.post(f"{BASE}/codes/validate", body(["REAL"]), format="json", REMOTE_ADDR="10.0.0.9")) == [
        None
    ]


@pytest.mark.django_db
@override_settings(CODE_FAILED_VALIDATION_LIMIT=2, CODE_LOCKOUT_SECONDS=60)
def test_failed_redeems_count_towards_the_lockout(api, named):
    named("USED")
    assert redeem(api, ["USED"]).status_code == 201
    assert_error(redeem(api, ["USED"]), 422, "codes_rejected")
    assert_error(redeem(api, ["USED"]), 422, "codes_rejected")
    assert_error(validate(api, ["USED"]), 429, "too_many_attempts")


@pytest.mark.django_db
def test_a_third_partys_bogus_codes_for_a_member_lock_only_the_guesser(
    named, member, support_user, manager, django_settings_limit_10
):
    """Ten bogus codes sent with "member": "M-1" by a third party lock that caller (its client
    and its IP) out; the member's own shop and the support desk go on validating M-1's codes."""
    named("M1-GIFT", code_fields={"assigned_member": member})
    guesser = api_client_for(make_user("guesser", "Integration"))
    shop = api_client_for(make_user("shop", "Integration"))
    desk = api_client_for(support_user)

    def check(client, codes, ip):
        return client.post(f"{BASE}/codes/validate", body(codes, member="M-1"), format="json", REMOTE_ADDR=ip)

    for i in range(10):
        assert reasons(check(guesser, [f"BOGUS{i}"], "203.0.113.66")) == ["code_unknown"]
    # the guesser is locked out: for this member, for any other, from its address under another name
    assert_error(check(guesser, ["M1-GIFT"], "203.0.113.66"), 429, "too_many_attempts")
    assert_error(check(guesser, ["M1-GIFT"], "198.51.100.1"), 429, "too_many_attempts")  # its client
    other_name = api_client_for(make_user("guesser2", "Integration"))
    assert_error(check(other_name, ["M1-GIFT"], "203.0.113.66"), 429, "too_many_attempts")  # its IP
    # the member is not locked out for anybody else
    assert reasons(check(shop, ["M1-GIFT"], "10.0.0.5")) == [None]
    assert reasons(check(desk, ["M1-GIFT"], "10.0.0.6")) == [None]
    assert (
        shop.post(
            f"{BASE}/codes/redeem", body(["M1-GIFT"], member="M-1"), format="json", REMOTE_ADDR="10.0.0.5"
        ).status_code
        == 201
    )
    # staff still hear about it: an anomaly about the member (no lock), and the locked callers
    signals = {(s.subject_type, s.subject, s.locked_until is not None) for s in AbuseSignal.objects.all()}
    assert signals == {("client", "guesser", True), ("ip", "203.0.113.66", True), ("member", str(member.pk), False)}


@pytest.fixture
def django_settings_limit_10(settings):
    settings.CODE_FAILED_VALIDATION_LIMIT = 10
    settings.CODE_LOCKOUT_SECONDS = 900


# --- bad input ----------------------------------------------------------------------------------


BAD_REQUESTS = [
    ({"codes": []}, "codes"),
    ({"codes": ["A"] * 21}, "codes"),
    ({"codes": ["A"] * 100_000}, "codes"),
    ({"codes": [123]}, "codes"),
    ({"codes": [None]}, "codes"),
    ({"codes": [True]}, "codes"),
    ({"codes": [["A"]]}, "codes"),
    ({"codes": ["A" * 65]}, "codes"),
    ({"codes": "GOOD"}, "codes"),
    ({"codes": {"a": 1}}, "codes"),
    ({"codes": None}, "codes"),
    ({}, "codes"),
    ({"codes": ["GOOD"], "member": "NOPE"}, "member"),
    ({"codes": ["GOOD"], "member": 42}, "member"),
    ({"codes": ["GOOD"], "order": {"amount": "-1"}}, "order"),
    ({"codes": ["GOOD"], "order": {"amount": -0.01}}, "order"),
    ({"codes": ["GOOD"], "order": {"amount": "abc"}}, "order"),
    ({"codes": ["GOOD"], "order": {"amount": "1e20"}}, "order"),
    ({"codes": ["GOOD"], "order": {"amount": "NaN"}}, "order"),
    ({"codes": ["GOOD"], "order": {"amount": True}}, "order"),
    ({"codes": ["GOOD"], "order": {"amount": "10", "id": "x" * 65}}, "order"),
    ({"codes": ["GOOD"], "order": "not an object"}, "order"),
    ({"codes": ["GOOD"], "order": {"amount": "10", "channel": ["pos"]}}, "order"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["validate", "redeem"])
@pytest.mark.parametrize("data,field", BAD_REQUESTS)
def test_bad_code_requests_are_a_400_in_the_error_shape_and_write_nothing(
    api, named, member, writes, path, data, field
):
    named("GOOD")
    before = writes()
    records = IdempotencyRecord.objects.count()
    r = api.post(f"{BASE}/codes/{path}", data, format="json")
    assert_error(r, 400, "invalid", field)
    assert writes() == before
    assert IdempotencyRecord.objects.count() == records


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["codes/validate", "codes/redeem", "campaigns/", "rollback", "code-batches"])
def test_malformed_json_is_a_400_and_writes_nothing(api, named, writes, url):
    code = named("GOOD", code_fields={"max_uses": 5})
    use = redeem(api, ["GOOD"]).json()["code_redemptions"][0]["id"]
    url = {
        "rollback": f"code-redemptions/{use}/rollback",
        "code-batches": f"campaigns/{code.campaign_id}/code-batches/",
    }.get(url, url)
    client = api_client_for(make_user("everything", superuser=True))
    before = writes()
    r = client.post(f"{BASE}/{url}", data='{"codes": ["GOOD",', content_type="application/json")
    assert_error(r, 400, "malformed_request")
    r = client.post(
        f"{BASE}/{url}", data='{"codes": ["GOOD",', content_type="application/json", headers={"Idempotency-Key": "k"}
    )
    assert_error(r, 400, "malformed_request")
    r = client.post(f"{BASE}/{url}", data='{"codes": ["GOOD"]}', content_type="text/plain")
    assert_error(r, 415, "unsupported_media_type")
    assert writes() == before
    assert not IdempotencyRecord.objects.filter(user__username="everything").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["validate", "redeem"])
def test_a_body_over_the_upload_limit_is_a_400_in_the_error_shape(api, named, writes, path, settings):
    named("GOOD")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    before = writes()
    data = json.dumps({"codes": ["GOOD"] * 5_000})
    r = api.post(f"{BASE}/codes/{path}", data=data, content_type="application/json")
    assert_error(r, 400, "malformed_request")
    r = api.post(f"{BASE}/codes/{path}", data=data, content_type="application/json", headers={"Idempotency-Key": "k"})
    assert_error(r, 400, "malformed_request")
    assert writes() == before and not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
def test_rollback_bad_input(api, named, writes):
    named("ROLL")
    use = redeem(api, ["ROLL"]).json()["code_redemptions"][0]["id"]
    before = writes()
    assert_error(api.post(f"{BASE}/code-redemptions/{use}/rollback", {}, format="json"), 400, "invalid", "reason")
    assert_error(
        api.post(f"{BASE}/code-redemptions/{use}/rollback", {"reason": "x" * 256}, format="json"),
        400,
        "invalid",
        "reason",
    )
    assert_error(api.post(f"{BASE}/code-redemptions/999999/rollback", {"reason": "x"}, format="json"), 404, "not_found")
    assert writes() == before


@pytest.mark.django_db
def test_code_permissions(named, auditor_user, campaign_manager_user, writes):
    named("PERM")
    auditor = api_client_for(auditor_user)
    assert auditor.get(f"{BASE}/codes/PERM/").status_code == 200
    before = writes()
    assert_error(auditor.post(f"{BASE}/codes/redeem", body(["PERM"]), format="json"), 403, "permission_denied")
    assert_error(APIClient().post(f"{BASE}/codes/validate", body(["PERM"]), format="json"), 401, "not_authenticated")
    assert writes() == before


# --- idempotency --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_idempotency_key_replay_on_redeem_redeems_once(api, named, member):
    code = named("MULTI", code_fields={"max_uses": 10})
    first = redeem(api, ["MULTI"], member="M-1", headers={"Idempotency-Key": "order-77"})
    again = redeem(api, ["MULTI"], member="M-1", headers={"Idempotency-Key": "order-77"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    code.refresh_from_db()
    assert code.uses == 1 and CodeRedemption.objects.count() == 1
    other = redeem(api, ["MULTI"], member="M-1", amount="5.00", headers={"Idempotency-Key": "order-77"})
    assert_error(other, 422, "idempotency_key_reused")
    code.refresh_from_db()
    assert code.uses == 1


@pytest.mark.django_db
def test_idempotency_key_replay_on_campaigns_batches_and_rollbacks(
    manager_api, api, named, make_campaign, django_capture_on_commit_callbacks
):
    data = {"name": "Once", "kind": "fixed_discount", "value": "5"}
    first = manager_api.post(f"{BASE}/campaigns/", data, format="json", headers={"Idempotency-Key": "c-1"})
    again = manager_api.post(f"{BASE}/campaigns/", data, format="json", headers={"Idempotency-Key": "c-1"})
    assert first.json() == again.json() and Campaign.objects.filter(name="Once").count() == 1
    campaign = make_campaign()
    url = f"{BASE}/campaigns/{campaign.pk}/code-batches/"
    with django_capture_on_commit_callbacks(execute=True):
        manager_api.post(url, {"count": 5, "length": 10}, format="json", headers={"Idempotency-Key": "b-1"})
        manager_api.post(url, {"count": 5, "length": 10}, format="json", headers={"Idempotency-Key": "b-1"})
    assert CodeBatch.objects.count() == 1 and Code.objects.filter(batch__isnull=False).count() == 5
    named("BACK", code_fields={"max_uses": 3})
    use = redeem(api, ["BACK"]).json()["code_redemptions"][0]["id"]
    url = f"{BASE}/code-redemptions/{use}/rollback"
    a = api.post(url, {"reason": "oops"}, format="json", headers={"Idempotency-Key": "r-1"})
    b = api.post(url, {"reason": "oops"}, format="json", headers={"Idempotency-Key": "r-1"})
    assert a.status_code == b.status_code == 200 and b["Idempotent-Replayed"] == "true"


# --- QR ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_qr_images(api, named):
    named("QR-CODE-1")
    r = api.get(f"{BASE}/codes/qr-code-1/qr.svg")
    assert r.status_code == 200 and r["Content-Type"] == "image/svg+xml"
    assert r.content.lstrip().startswith(b"<svg") and b"</svg>" in r.content
    assert "sandbox" in r["Content-Security-Policy"]
    r = api.get(f"{BASE}/codes/QRCODE1/qr.png", HTTP_ACCEPT="image/png")
    assert r.status_code == 200 and r["Content-Type"] == "image/png"
    small = r.content
    assert small.startswith(b"\x89PNG\r\n\x1a\n")
    big = api.get(f"{BASE}/codes/QRCODE1/qr.png", {"scale": 20}).content
    assert big.startswith(b"\x89PNG\r\n\x1a\n") and len(big) > len(small)
    assert_error(api.get(f"{BASE}/codes/QRCODE1/qr.png", {"scale": 0}), 400, "invalid", "scale")
    assert_error(api.get(f"{BASE}/codes/NOPE/qr.png", HTTP_ACCEPT="image/png"), 404, "not_found")
    assert_error(api.get(f"{BASE}/codes/NOPE/qr.svg"), 404, "not_found")
    assert_error(APIClient().get(f"{BASE}/codes/QRCODE1/qr.svg"), 401, "not_authenticated")


# --- schema -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_openapi_schema_lists_the_promotions_endpoints(api):
    r = api.get(reverse("schema"), {"format": "json"})
    assert r.status_code == 200
    paths = r.json()["paths"]
    expected = {
        "/api/v1/campaigns/": {"get", "post"},
        "/api/v1/campaigns/{id}/": {"get", "patch"},
        "/api/v1/campaigns/{id}/code-batches/": {"get", "post"},
        "/api/v1/campaigns/{id}/codes/": {"post"},
        "/api/v1/code-batches/{id}/": {"get"},
        "/api/v1/codes/": {"get"},
        "/api/v1/codes/{code}/": {"get"},
        "/api/v1/codes/validate": {"post"},
        "/api/v1/codes/redeem": {"post"},
        "/api/v1/code-redemptions/{id}/rollback": {"post"},
        "/api/v1/codes/{code}/qr.svg": {"get"},
        "/api/v1/codes/{code}/qr.png": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    assert "image/png" in paths["/api/v1/codes/{code}/qr.png"]["get"]["responses"]["200"]["content"]


def test_client_ip_believes_forwarded_for_only_from_trusted_proxies(settings, rf):
    from loyalty.network import client_ip

    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    direct = rf.get("/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert client_ip(direct) == "203.0.113.9"  # not from a proxy: the header is ignored
    proxied = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7")
    assert client_ip(proxied) == "198.51.100.7"  # the right-most hop the proxy saw; the forged left part is ignored
    garbage = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="not-an-ip")
    assert client_ip(garbage) == "10.0.0.1"
