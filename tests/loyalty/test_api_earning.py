"""The v1 API for program settings, rule sets, purchases and returns (the seed 002 examples through the API)."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from loyalty.models import (
    IdempotencyRecord,
    LedgerEntry,
    PointBalance,
    ProgramSettings,
    Rule,
    RuleSet,
    Transaction,
    TransactionReturn,
)
from loyalty.selectors import verify_ledger
from tests.helpers import BASE, BY_TIER, FIXED, api_client_for, assert_error, d


@pytest.fixture
def writes(db):
    def snapshot():
        return (
            Transaction.objects.count(),
            LedgerEntry.objects.count(),
            RuleSet.objects.count(),
            Rule.objects.count(),
            TransactionReturn.objects.count(),
            PointBalance.objects.count(),
        )

    return snapshot


def create_set(client, name, valid_from, valid_to=None, rules=None, publish=True):
    body = {"name": name, "valid_from": valid_from, "valid_to": valid_to, "rules": rules or []}
    r = client.post(f"{BASE}/rule-sets/", body, format="json")
    assert r.status_code == 201, r.content
    if publish:
        p = client.post(f"{BASE}/rule-sets/{r.json()['id']}/publish")
        assert p.status_code == 200, p.content
        assert p.json()["status"] == "published"
        return p.json()
    return r.json()


def buy(client, external_id, occurred_at, amount="100.00", member=None, **extra):
    body = {"external_id": external_id, "occurred_at": occurred_at, "amount": amount, "currency": "EUR", **extra}
    if member:
        body["member"] = member
    return client.post(f"{BASE}/transactions/", body, format="json")


@pytest.fixture
def seed_sets(campaign_manager, metric, tiers):
    """Seed 002: Set 2 (2023-01-01..06-30, 98 points) and Set 3 (07-01..08-31, 89 points), via the API."""
    with time_machine.travel(d(2022, 12, 1), tick=False):
        set2 = create_set(
            campaign_manager, "Set 2", "2023-01-01T00:00:00Z", "2023-07-01T00:00:00Z", [{**FIXED, "points": 98}]
        )
        set3 = create_set(
            campaign_manager, "Set 3", "2023-07-01T00:00:00Z", "2023-09-01T00:00:00Z", [{**FIXED, "points": 89}]
        )
    return set2, set3


# --- rule sets ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_rule_set_shape_in_and_out(campaign_manager, metric, tiers):
    rules = [
        {**FIXED, "points": 5, "conditions": {"min_amount": "10.00", "channels": ["web"], "stores": [], "tiers": []}},
        {"name": "Per 10", "metric": "points", "action": "per_amount", "points": 1, "unit_amount": "10.00"},
        BY_TIER,
    ]
    with time_machine.travel(d(2023, 1, 1), tick=False):
        r = campaign_manager.post(
            f"{BASE}/rule-sets/",
            {"name": "Base", "valid_from": "2023-02-01T00:00:00+01:00", "rules": rules, "description": "x"},
            format="json",
        )
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["status"], body["version"], body["valid_to"], body["created_by"]) == ("draft", 1, None, "carl")
    assert dt.datetime.fromisoformat(body["valid_from"]) == d(2023, 1, 31, 23)
    first, per, pct = body["rules"]
    assert first["conditions"] == {"min_amount": "10.00", "channels": ["web"], "stores": [], "tiers": []}
    assert (first["name"], first["metric"], first["action"], first["points"]) == ("Visit", "points", "fixed", 5)
    assert (per["action"], per["points"], per["unit_amount"]) == ("per_amount", 1, "10.00")
    assert pct["percent_by_tier"] == {"GOLD": 20, "SILVER": 15, "BRONZE": 10}
    assert pct["conditions"] == {"min_amount": None, "channels": [], "stores": [], "tiers": []}
    assert campaign_manager.get(f"{BASE}/rule-sets/{body['id']}/").json() == body
    listed = campaign_manager.get(f"{BASE}/rule-sets/", {"status": "draft", "name": "Base"}).json()
    assert [s["id"] for s in listed["results"]] == [body["id"]]


@pytest.mark.django_db
def test_draft_patch_then_published_set_is_immutable(campaign_manager, metric, tiers):
    with time_machine.travel(d(2022, 12, 1), tick=False):
        draft = create_set(
            campaign_manager, "Base", "2023-01-01T00:00:00Z", rules=[{**FIXED, "points": 1}], publish=False
        )
        r = campaign_manager.patch(
            f"{BASE}/rule-sets/{draft['id']}/",
            {"valid_to": "2023-07-01T00:00:00Z", "rules": [{**FIXED, "points": 98}]},
            format="json",
        )
        assert r.status_code == 200, r.content
        assert r.json()["rules"][0]["points"] == 98 and r.json()["valid_to"].startswith("2023-07-01")
        assert campaign_manager.post(f"{BASE}/rule-sets/{draft['id']}/publish").status_code == 200
        before = campaign_manager.get(f"{BASE}/rule-sets/{draft['id']}/").json()
        for body in ({"name": "x"}, {"rules": [{**FIXED, "points": 1000}]}, {"valid_to": None}):
            assert_error(
                campaign_manager.patch(f"{BASE}/rule-sets/{draft['id']}/", body, format="json"),
                409,
                "rule_set_published",
            )
        assert_error(campaign_manager.post(f"{BASE}/rule-sets/{draft['id']}/publish"), 409, "invalid_transition")
    assert campaign_manager.get(f"{BASE}/rule-sets/{draft['id']}/").json() == before


@pytest.mark.django_db
def test_a_patch_replaces_rules_with_complete_rules_only(campaign_manager, metric, tiers):
    with time_machine.travel(d(2022, 12, 1), tick=False):
        draft = create_set(
            campaign_manager, "Base", "2023-01-01T00:00:00Z", rules=[{**FIXED, "points": 1}], publish=False
        )
        url = f"{BASE}/rule-sets/{draft['id']}/"
        r = campaign_manager.patch(
            url, {"name": "Renamed", "rules": [{"name": "No action", "metric": "points"}]}, format="json"
        )
        assert_error(r, 400, "invalid", "rules")
        assert r.json()["errors"]["rules"] == {"0": {"action": ["This field is required."]}}
        r = campaign_manager.patch(url, {"rules": [{"points": 5, "unit_amount": ""}]}, format="json")
        assert_error(r, 400, "invalid", "rules")
        assert campaign_manager.get(url).json() == draft


@pytest.mark.django_db
def test_overlapping_publish_is_refused(seed_sets, campaign_manager):
    with time_machine.travel(d(2022, 12, 2), tick=False):
        clash = create_set(
            campaign_manager,
            "Summer",
            "2023-06-15T00:00:00Z",
            "2023-07-15T00:00:00Z",
            [{**FIXED, "points": 5}],
            publish=False,
        )
        assert_error(campaign_manager.post(f"{BASE}/rule-sets/{clash['id']}/publish"), 409, "rule_set_overlap")
    assert campaign_manager.get(f"{BASE}/rule-sets/{clash['id']}/").json()["status"] == "draft"


@pytest.mark.django_db
def test_new_version_publish_closes_the_predecessor_and_retire(campaign_manager, metric, tiers):
    with time_machine.travel(d(2023, 1, 1), tick=False):
        v1 = create_set(campaign_manager, "Base", "2023-01-01T00:00:00Z", rules=[{**FIXED, "points": 10}])
    with time_machine.travel(d(2023, 3, 1), tick=False):
        r = campaign_manager.post(
            f"{BASE}/rule-sets/{v1['id']}/new-version", {"valid_from": "2023-02-01T00:00:00Z"}, format="json"
        )
        assert r.status_code == 201 and r.json()["previous"] == v1["id"] and r.json()["version"] == 2
        assert_error(campaign_manager.post(f"{BASE}/rule-sets/{r.json()['id']}/publish"), 422, "rule_set_rewrites_past")
        r = campaign_manager.post(f"{BASE}/rule-sets/{v1['id']}/new-version", {}, format="json")
        v3 = r.json()
        assert r.status_code == 201 and v3["status"] == "draft" and v3["rules"][0]["points"] == 10
        assert dt.datetime.fromisoformat(v3["valid_from"]) == d(2023, 3, 1)
        campaign_manager.patch(f"{BASE}/rule-sets/{v3['id']}/", {"rules": [{**FIXED, "points": 20}]}, format="json")
        assert campaign_manager.post(f"{BASE}/rule-sets/{v3['id']}/publish").status_code == 200
    old = campaign_manager.get(f"{BASE}/rule-sets/{v1['id']}/").json()
    assert dt.datetime.fromisoformat(old["valid_to"]) == d(2023, 3, 1) and old["status"] == "published"
    in_force = campaign_manager.get(f"{BASE}/rule-sets/", {"in_force_at": "2023-02-15T00:00:00Z"}).json()["results"]
    assert [s["id"] for s in in_force] == [v1["id"]]
    with time_machine.travel(d(2023, 6, 1), tick=False):
        r = campaign_manager.post(f"{BASE}/rule-sets/{v3['id']}/retire", {"reason": "programme ends"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "retired"
    assert dt.datetime.fromisoformat(r.json()["valid_to"]) == d(2023, 6, 1)


@pytest.mark.django_db
def test_rule_set_endpoints_need_the_campaign_manager_role(api, support_user, campaign_manager, metric, tiers):
    body = {"name": "Base", "valid_from": "2023-01-01T00:00:00Z", "rules": [{**FIXED, "points": 1}]}
    for client in (api, api_client_for(support_user)):
        assert client.get(f"{BASE}/rule-sets/").status_code == 200
        assert_error(client.post(f"{BASE}/rule-sets/", body, format="json"), 403, "permission_denied")
    draft = campaign_manager.post(f"{BASE}/rule-sets/", body, format="json").json()
    assert_error(api.patch(f"{BASE}/rule-sets/{draft['id']}/", {"name": "x"}, format="json"), 403, "permission_denied")
    for action in ("publish", "new-version", "retire"):
        assert_error(api.post(f"{BASE}/rule-sets/{draft['id']}/{action}"), 403, "permission_denied")
    assert_error(campaign_manager.get(f"{BASE}/rule-sets/999999/"), 404, "not_found")
    assert_error(campaign_manager.post(f"{BASE}/rule-sets/999999/publish"), 404, "not_found")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body,field",
    [
        ({"valid_from": "2023-01-01T00:00:00Z"}, "name"),
        ({"name": "X"}, "valid_from"),
        ({"name": "X", "valid_from": "2023-01-01T00:00:00"}, "valid_from"),  # naive
        ({"name": "X", "valid_from": "yesterday"}, "valid_from"),
        ({"name": "X", "valid_from": "2023-02-01T00:00:00Z", "valid_to": "2023-01-01T00:00:00Z"}, "valid_to"),
        ({"name": "X", "valid_from": "2023-01-01T00:00:00Z", "rules": "fixed"}, "rules"),
        ({"name": "X", "valid_from": "2023-01-01T00:00:00Z", "rules": [{**FIXED}]}, "rules"),  # no points
        ({"name": "X", "valid_from": "2023-01-01T00:00:00Z", "rules": [{**FIXED, "points": -1}]}, "rules"),
        ({"name": "X", "valid_from": "2023-01-01T00:00:00Z", "rules": [{**FIXED, "points": 10**12}]}, "rules"),
        ({"name": "X", "valid_from": "2023-01-01T00:00:00Z", "rules": [{**FIXED, "action": "double"}]}, "rules"),
        (
            {"name": "X", "valid_from": "2023-01-01T00:00:00Z", "rules": [{**FIXED, "points": 1, "metric": "nope"}]},
            "metric",
        ),
        (
            {"name": "X", "valid_from": "2023-01-01T00:00:00Z", "rules": [{**BY_TIER, "percent_by_tier": {"IRON": 5}}]},
            "percent_by_tier",
        ),
        (
            {
                "name": "X",
                "valid_from": "2023-01-01T00:00:00Z",
                "rules": [{**BY_TIER, "percent_by_tier": {"GOLD": "x"}}],
            },
            "rules",
        ),
        (
            {
                "name": "X",
                "valid_from": "2023-01-01T00:00:00Z",
                "rules": [{**FIXED, "points": 1, "conditions": {"min_amount": "-1"}}],
            },
            "rules",
        ),
        (
            {
                "name": "X",
                "valid_from": "2023-01-01T00:00:00Z",
                "rules": [{**FIXED, "points": 1, "conditions": {"channels": "web"}}],
            },
            "rules",
        ),
    ],
)
def test_bad_rule_sets_are_400_and_write_nothing(campaign_manager, metric, tiers, writes, body, field):
    before = writes()
    assert_error(campaign_manager.post(f"{BASE}/rule-sets/", body, format="json"), 400, "invalid", field)
    assert writes() == before


@pytest.mark.django_db
def test_publishing_an_empty_set_is_refused(campaign_manager, metric):
    draft = create_set(campaign_manager, "Empty", "2023-01-01T00:00:00Z", publish=False)
    assert_error(campaign_manager.post(f"{BASE}/rule-sets/{draft['id']}/publish"), 400, "invalid", "rules")


# --- purchases: point in time --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_may_purchase_processed_in_august_earns_by_set_2(seed_sets, api, member):
    with time_machine.travel(d(2023, 8, 17, 10), tick=False):
        r = buy(api, "B-1", "2023-05-20T15:00:00+00:00", member="M-1", store="AMS-1", channel="pos")
        now_bill = buy(api, "B-2", "2023-08-17T09:00:00+00:00", member="M-1")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["points_earned"] == 98 and body["member"] == "M-1" and body["non_loyalty"] is False
    assert body["breakdown"]["rule_set"]["name"] == "Set 2" and body["breakdown"]["rules"][0]["points"] == 98
    assert (body["amount"], body["currency"], body["store"], body["channel"]) == ("100.00", "EUR", "AMS-1", "pos")
    assert now_bill.json()["points_earned"] == 89
    entry = api.get(f"{BASE}/members/M-1/ledger/").json()["results"][-1]
    assert entry["amount"] == 98 and entry["source"] == {"type": "transaction", "id": "B-1"}
    assert api.get(f"{BASE}/transactions/B-1/").json()["breakdown"] == body["breakdown"]


@pytest.mark.django_db
def test_valid_to_is_exclusive_and_the_switch_instant_uses_the_new_set(seed_sets, api, member):
    with time_machine.travel(d(2023, 8, 17), tick=False):
        before = buy(api, "B-1", "2023-06-30T23:59:59Z", member="M-1").json()
        at_switch = buy(api, "B-2", "2023-07-01T00:00:00Z", member="M-1").json()
    with time_machine.travel(d(2023, 9, 2), tick=False):
        after_set_3 = buy(api, "B-3", "2023-09-01T00:00:00Z", member="M-1").json()
    assert (before["points_earned"], at_switch["points_earned"]) == (98, 89)
    assert at_switch["breakdown"]["rule_set"]["name"] == "Set 3"
    assert after_set_3["points_earned"] == 0 and after_set_3["breakdown"]["rule_set"] is None


@pytest.mark.django_db
def test_a_bill_at_2330_local_on_june_30_is_june_30(settings, campaign_manager, api, metric, tiers):
    settings.TIME_ZONE = "Europe/Paris"
    with time_machine.travel(d(2022, 12, 1), tick=False):
        create_set(
            campaign_manager,
            "June",
            "2023-06-01T00:00:00+02:00",
            "2023-07-01T00:00:00+02:00",
            [{**FIXED, "points": 98}],
        )
        create_set(campaign_manager, "July", "2023-07-01T00:00:00+02:00", rules=[{**FIXED, "points": 89}])
    api.post(f"{BASE}/members/", {"external_id": "P-1"}, format="json")
    with time_machine.travel(d(2023, 8, 1), tick=False):
        late_evening = buy(api, "B-1", "2023-06-30T23:30:00+02:00", member="P-1")
        just_after = buy(api, "B-2", "2023-07-01T00:00:00+02:00", member="P-1")
    body = late_evening.json()
    assert body["points_earned"] == 98 and body["breakdown"]["rule_set"]["name"] == "June"
    assert dt.datetime.fromisoformat(body["occurred_at"]) == d(2023, 6, 30, 21, 30)
    assert body["occurred_at"] == "2023-06-30T23:30:00+02:00"  # shown in the program's zone
    assert just_after.json()["points_earned"] == 89


@pytest.mark.django_db
def test_tier_at_the_purchase_date_decides_the_percentage(campaign_manager, api, metric, tiers):
    with time_machine.travel(d(2023, 1, 1), tick=False):
        create_set(campaign_manager, "Tiers", "2023-01-01T00:00:00Z", rules=[BY_TIER])
        for ext, tier in (("G", "GOLD"), ("S", "SILVER"), ("B", "BRONZE")):
            assert api.post(f"{BASE}/members/", {"external_id": ext, "tier": tier}, format="json").status_code == 201
    with time_machine.travel(d(2023, 8, 10), tick=False):
        api.post(f"{BASE}/members/S/tier", {"tier": "GOLD", "reason": "big purchase"}, format="json")
    with time_machine.travel(d(2023, 8, 17), tick=False):
        earned = {
            ext: buy(api, f"B-{ext}", "2023-05-20T12:00:00Z", amount="200.00", member=ext).json()
            for ext in ("G", "S", "B")
        }
        now_silver = buy(api, "B-S2", "2023-08-17T00:00:00Z", amount="200.00", member="S").json()
    assert {k: (v["points_earned"], v["breakdown"]["tier"]) for k, v in earned.items()} == {
        "G": (40, "GOLD"),
        "S": (30, "SILVER"),
        "B": (20, "BRONZE"),
    }
    assert (now_silver["points_earned"], now_silver["breakdown"]["tier"]) == (40, "GOLD")


@pytest.mark.django_db
def test_non_loyalty_purchase_and_every_search_filter(seed_sets, api, member):
    with time_machine.travel(d(2023, 8, 17), tick=False):
        buy(api, "A-1", "2023-05-20T10:00:00Z", amount="50.00", store="AMS-1", channel="pos")
        buy(api, "A-2", "2023-05-21T10:00:00Z", amount="150.00", store="AMS-2", channel="web", member="M-1")
        r = buy(api, "A-3", "2023-06-01T10:00:00Z", amount="250.00", store="AMS-1", channel="web")
    assert r.status_code == 201 and r.json()["member"] is None and r.json()["non_loyalty"] is True
    assert r.json()["points_earned"] == 0 and r.json()["processed_at"] is None

    def ids(**params):
        r = api.get(f"{BASE}/transactions/", params)
        assert r.status_code == 200, r.content
        return sorted(t["external_id"] for t in r.json()["results"])

    assert ids() == ["A-1", "A-2", "A-3"]
    assert ids(external_id="A-2") == ["A-2"]
    assert ids(member="M-1") == ["A-2"]
    assert ids(non_loyalty="true") == ["A-1", "A-3"]
    assert ids(non_loyalty="false") == ["A-2"]
    assert ids(occurred_after="2023-05-21T00:00:00Z") == ["A-2", "A-3"]
    assert ids(occurred_before="2023-05-21T10:00:00Z") == ["A-1"]
    assert ids(store="AMS-1") == ["A-1", "A-3"]
    assert ids(channel="web") == ["A-2", "A-3"]
    assert ids(amount_min="150") == ["A-2", "A-3"]
    assert ids(amount_max="150.00") == ["A-1", "A-2"]
    assert ids(store="AMS-1", amount_min="100", non_loyalty="true", occurred_after="2023-05-01T00:00:00+02:00") == [
        "A-3"
    ]
    assert_error(api.get(f"{BASE}/transactions/", {"amount_min": "lots"}), 400, "invalid", "amount_min")
    assert_error(api.get(f"{BASE}/transactions/", {"occurred_after": "soon"}), 400, "invalid", "occurred_after")
    assert_error(api.get(f"{BASE}/transactions/NOPE/"), 404, "not_found")


@pytest.fixture
def percent_rules(campaign_manager, api, metric, tiers):
    with time_machine.travel(d(2024, 1, 1), tick=False):
        create_set(campaign_manager, "Tiers", "2024-01-01T00:00:00Z", rules=[BY_TIER])
        api.post(f"{BASE}/members/", {"external_id": "R-1"}, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change,status,code,field",
    [
        ({"amount": "-5.00"}, 400, "invalid", "amount"),
        ({"amount": "0"}, 400, "invalid", "amount"),
        ({"amount": "abc"}, 400, "invalid", "amount"),
        ({"amount": True}, 400, "invalid", "amount"),
        ({"amount": "10.001"}, 400, "invalid", "amount"),
        ({"amount": "1e30"}, 400, "invalid", "amount"),
        ({"amount": 10**40}, 400, "invalid", "amount"),
        ({"amount": "NaN"}, 400, "invalid", "amount"),
        ({"amount": None}, 400, "invalid", "amount"),
        ({"currency": "XXX"}, 400, "invalid", "currency"),
        ({"currency": "EURO"}, 400, "invalid", "currency"),
        ({"member": "NOPE"}, 400, "invalid", "member"),
        ({"occurred_at": "2024-02-01T00:10:00Z"}, 400, "invalid", "occurred_at"),  # future beyond tolerance
        ({"occurred_at": "2024-02-01T00:00:00"}, 400, "invalid", "occurred_at"),  # naive
        ({"occurred_at": "1st of February"}, 400, "invalid", "occurred_at"),
        ({"occurred_at": "99999-01-01T00:00:00Z"}, 400, "invalid", "occurred_at"),
        ({"external_id": ""}, 400, "invalid", "external_id"),
        ({"external_id": "X" * 65}, 400, "invalid", "external_id"),
        ({"external_id": "DUP"}, 409, "already_exists", "external_id"),
        ({"store": "S" * 65}, 400, "invalid", "store"),
    ],
)
def test_bad_purchases_are_4xx_and_write_nothing(percent_rules, api, writes, change, status, code, field):
    with time_machine.travel(d(2024, 2, 1), tick=False):
        assert buy(api, "DUP", "2024-01-31T00:00:00Z", member="R-1").status_code == 201
        before = writes()
        body = {
            "external_id": "NEW",
            "occurred_at": "2024-01-31T12:00:00Z",
            "amount": "10.00",
            "currency": "EUR",
            "member": "R-1",
            **change,
        }
        assert_error(api.post(f"{BASE}/transactions/", body, format="json"), status, code, field)
    assert writes() == before


@pytest.mark.django_db
def test_malformed_json_missing_fields_and_inactive_member(percent_rules, api, support_user, writes):
    with time_machine.travel(d(2024, 2, 1), tick=False):
        before = writes()
        r = api.post(f"{BASE}/transactions/", data='{"external_id": "X",', content_type="application/json")
        assert_error(r, 400, "malformed_request")
        r = api.post(f"{BASE}/transactions/", {}, format="json")
        assert_error(r, 400, "invalid")
        assert set(r.json()["errors"]) == {"external_id", "occurred_at", "amount", "currency"}
        assert_error(api.post(f"{BASE}/transactions/", [1, 2], format="json"), 400, "invalid")
        api_client_for(support_user).patch(f"{BASE}/members/R-1/", {"status": "suspended"}, format="json")
        assert_error(buy(api, "S-1", "2024-01-31T00:00:00Z", member="R-1"), 422, "member_inactive")
        assert buy(api, "F-1", "2024-02-01T00:04:00Z", member=None).status_code == 201  # within the clock tolerance
    assert writes()[0] == before[0] + 1


@pytest.mark.django_db
def test_idempotency_key_replays_a_purchase_and_a_reused_bill_number_is_409(percent_rules, api):
    body = {"external_id": "I-1", "occurred_at": "2024-02-01T00:00:00Z", "amount": "100.00", "currency": "EUR"}
    body["member"] = "R-1"
    with time_machine.travel(d(2024, 2, 1), tick=False):
        first = api.post(f"{BASE}/transactions/", body, format="json", HTTP_IDEMPOTENCY_KEY="pos-1")
        again = api.post(f"{BASE}/transactions/", body, format="json", HTTP_IDEMPOTENCY_KEY="pos-1")
        assert first.status_code == again.status_code == 201 and again["Idempotent-Replayed"] == "true"
        assert again.json() == first.json() and first.json()["points_earned"] == 10
        assert_error(api.post(f"{BASE}/transactions/", body, format="json"), 409, "already_exists")
        other = api.post(
            f"{BASE}/transactions/", {**body, "amount": "5.00"}, format="json", HTTP_IDEMPOTENCY_KEY="pos-1"
        )
        assert_error(other, 422, "idempotency_key_reused")
    assert LedgerEntry.objects.count() == 1 and IdempotencyRecord.objects.count() == 1


@pytest.mark.django_db
def test_purchases_need_add_transaction(percent_rules, auditor_user, approver_user):
    with time_machine.travel(d(2024, 2, 1), tick=False):
        for user in (auditor_user, approver_user):
            client = api_client_for(user)
            assert client.get(f"{BASE}/transactions/").status_code == 200
            assert_error(buy(client, "X-1", "2024-01-31T00:00:00Z"), 403, "permission_denied")
            assert_error(client.post(f"{BASE}/transactions/X-1/return", {}, format="json"), 403, "permission_denied")
    assert not Transaction.objects.exists()


# --- returns -----------------------------------------------------------------------------------


def balance(api, member="R-1"):
    [row] = api.get(f"{BASE}/members/{member}/balances/").json()
    return row["balance"], row["pending"], row["debt"]


@pytest.mark.django_db
def test_full_and_partial_returns_take_back_exactly_what_was_earned(percent_rules, api, writes):
    with time_machine.travel(d(2024, 2, 1), tick=False):
        assert buy(api, "R-1", "2024-02-01T00:00:00Z", amount="155.00", member="R-1").json()["points_earned"] == 15
        first = api.post(f"{BASE}/transactions/R-1/return", {"amount": "50.00", "reason": "one item"}, format="json")
        assert first.status_code == 201, first.content
        assert (first.json()["points_reversed"], first.json()["amount"], first.json()["transaction"]) == (
            4,
            "50.00",
            "R-1",
        )
        assert balance(api) == (11, 0, 0)
        before = writes()
        too_much = api.post(f"{BASE}/transactions/R-1/return", {"amount": "105.01"}, format="json")
        assert_error(too_much, 409, "return_exceeds_amount", "amount")
        assert_error(api.post(f"{BASE}/transactions/R-1/return", {"amount": "-1"}, format="json"), 400, "invalid")
        assert_error(api.post(f"{BASE}/transactions/R-1/return", {"amount": "x"}, format="json"), 400, "invalid")
        assert_error(api.post(f"{BASE}/transactions/NOPE/return", {}, format="json"), 404, "not_found")
        assert writes() == before
        second = api.post(f"{BASE}/transactions/R-1/return", {"reason": "rest"}, format="json")
        assert second.status_code == 201
        assert (second.json()["points_reversed"], second.json()["amount"]) == (11, "105.00")
        assert_error(
            api.post(f"{BASE}/transactions/R-1/return", {"amount": "1.00"}, format="json"), 409, "already_returned"
        )
    detail = api.get(f"{BASE}/transactions/R-1/").json()
    assert detail["returned_amount"] == "155.00" and len(detail["returns"]) == 2
    assert balance(api) == (0, 0, 0)
    assert verify_ledger().ok


@pytest.mark.django_db
def test_a_return_after_spending_leaves_debt_the_next_purchase_repays(percent_rules, api):
    with time_machine.travel(d(2024, 2, 1), tick=False):
        assert buy(api, "R-1", "2024-02-01T00:00:00Z", amount="400.00", member="R-1").json()["points_earned"] == 40
        r = api.post(
            f"{BASE}/members/R-1/adjustments/", {"metric": "points", "amount": -35, "reason": "spent"}, format="json"
        )
        assert r.status_code == 201
        ret = api.post(f"{BASE}/transactions/R-1/return", {"reason": "returned"}, format="json").json()
    assert (ret["points_reversed"], ret["debt_created"]) == (40, 35)
    assert balance(api) == (0, 0, 35)
    assert verify_ledger().ok
    with time_machine.travel(d(2024, 2, 5, 12), tick=False):
        buy(api, "R-2", "2024-02-05T00:00:00Z", amount="200.00", member="R-1")  # 20 points, all to the debt
        assert balance(api) == (0, 0, 15)
        buy(api, "R-3", "2024-02-05T01:00:00Z", amount="200.00", member="R-1")  # 15 debt, 5 spendable
    assert balance(api) == (5, 0, 0)
    report = verify_ledger()
    assert report.ok, report.problems


@pytest.mark.django_db
def test_return_idempotency_key(percent_rules, api):
    with time_machine.travel(d(2024, 2, 1), tick=False):
        buy(api, "R-1", "2024-02-01T00:00:00Z", amount="100.00", member="R-1")
        url = f"{BASE}/transactions/R-1/return"
        first = api.post(url, {"amount": "50.00"}, format="json", HTTP_IDEMPOTENCY_KEY="ret-1")
        again = api.post(url, {"amount": "50.00"}, format="json", HTTP_IDEMPOTENCY_KEY="ret-1")
    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    assert TransactionReturn.objects.count() == 1


# --- program settings --------------------------------------------------------------------------


@pytest.mark.django_db
def test_program_settings_get_and_patch(campaign_manager, support_user, api, campaign_manager_user):
    r = api.get(f"{BASE}/program/")
    assert r.status_code == 200
    body = r.json()
    assert body["retro_enabled"] is False and body["retro_window_days"] == 90
    assert body["rollback_approval_reasons"] == ["fraud"] and body["rollback_expired_lot_grace_days"] == 0
    for key in (
        "retro_max_claims_per_30_days",
        "retro_auto_approve_below_points",
        "rollback_window_days",
        "rollback_approval_above_points",
        "rollback_max_per_member_30_days",
        "rollback_partial_allowed",
        "currency",
    ):
        assert key in body
    change = {
        "retro_enabled": True,
        "retro_window_days": 60,
        "retro_max_claims_per_30_days": 2,
        "retro_auto_approve_below_points": 50,
        "rollback_window_days": 14,
        "rollback_approval_above_points": 1000,
        "rollback_approval_reasons": ["fraud", "other", "fraud"],
        "rollback_max_per_member_30_days": 4,
        "rollback_partial_allowed": False,
        "rollback_expired_lot_grace_days": 7,
        "reason": "Q3 policy",
    }
    r = campaign_manager.patch(f"{BASE}/program/", change, format="json")
    assert r.status_code == 200, r.content
    out = r.json()
    assert out["rollback_approval_reasons"] == ["fraud", "other"]
    assert {k: out[k] for k in change if k not in ("reason", "rollback_approval_reasons")} == {
        k: v for k, v in change.items() if k not in ("reason", "rollback_approval_reasons")
    }
    program = ProgramSettings.load()
    assert program.retro_enabled and program.rollback_expired_lot_grace_days == 7
    last = program.history.first()
    assert last.history_user == campaign_manager_user and last.history_change_reason == "Q3 policy"
    r = campaign_manager.patch(f"{BASE}/program/", {"retro_auto_approve_below_points": None}, format="json")
    assert r.json()["retro_auto_approve_below_points"] is None and r.json()["retro_window_days"] == 60
    # read-only fields are ignored, not changed
    assert campaign_manager.patch(f"{BASE}/program/", {"currency": "USD"}, format="json").json()["currency"] == "EUR"


@pytest.mark.django_db
def test_program_settings_need_the_campaign_manager_role(support_user, api, approver_user):
    for user_client in (api_client_for(support_user), api, api_client_for(approver_user)):
        assert user_client.get(f"{BASE}/program/").status_code == 200
        assert_error(
            user_client.patch(f"{BASE}/program/", {"retro_enabled": True}, format="json"), 403, "permission_denied"
        )
    assert ProgramSettings.load().retro_enabled is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body,field",
    [
        ({"retro_window_days": -1}, "retro_window_days"),
        ({"retro_window_days": 0}, "retro_window_days"),
        ({"retro_window_days": "abc"}, "retro_window_days"),
        ({"retro_window_days": 10**12}, "retro_window_days"),
        ({"retro_enabled": "maybe"}, "retro_enabled"),
        ({"retro_max_claims_per_30_days": 1.5}, "retro_max_claims_per_30_days"),
        ({"rollback_approval_reasons": ["nonsense"]}, "rollback_approval_reasons"),
        ({"rollback_approval_reasons": "fraud"}, "rollback_approval_reasons"),
        ({"rollback_statuses": ["canceled"]}, "rollback_statuses"),
        ({"rollback_fulfillment_statuses": ["teleported"]}, "rollback_fulfillment_statuses"),
        ({"rollback_expired_lot_grace_days": -3}, "rollback_expired_lot_grace_days"),
        ({"qualification_period_months": 5}, "qualification_period_months"),
        ({"rollback_approval_above_points": -1}, "rollback_approval_above_points"),
    ],
)
def test_invalid_program_settings_are_400_and_change_nothing(campaign_manager, body, field):
    before = campaign_manager.get(f"{BASE}/program/").json()
    history = ProgramSettings.history.count()
    assert_error(campaign_manager.patch(f"{BASE}/program/", body, format="json"), 400, "invalid", field)
    assert campaign_manager.get(f"{BASE}/program/").json() == before
    assert ProgramSettings.history.count() == history


@pytest.mark.django_db
def test_openapi_schema_lists_the_earning_endpoints(api):
    paths = set(api.get(reverse("schema"), {"format": "json"}).json()["paths"])
    for p in [
        "/api/v1/program/",
        "/api/v1/rule-sets/",
        "/api/v1/rule-sets/{id}/",
        "/api/v1/rule-sets/{id}/publish",
        "/api/v1/rule-sets/{id}/new-version",
        "/api/v1/rule-sets/{id}/retire",
        "/api/v1/transactions/",
        "/api/v1/transactions/{external_id}/",
        "/api/v1/transactions/{external_id}/return",
    ]:
        assert p in paths, p
