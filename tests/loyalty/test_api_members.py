"""The v1 API for members and points: happy paths, the error shape, idempotency, nothing written on bad input."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from loyalty import services
from loyalty.kernel import SYSTEM
from loyalty.models import IdempotencyRecord, LedgerEntry, Member, Metric, Reward, Tier
from tests.helpers import BASE, api_client_for, assert_error


@pytest.fixture
def writes(db):
    """Counts of every table a bad request could touch."""

    def snapshot():
        return (
            Member.objects.count(),
            LedgerEntry.objects.count(),
            Metric.objects.count(),
            Tier.objects.count(),
            Reward.objects.count(),
        )

    return snapshot


@pytest.mark.django_db
def test_enrol_read_patch_a_member(api, tiers):
    r = api.post(f"{BASE}/members/", {"external_id": "C-9", "email": "c9@example.com", "name": "Cee"}, format="json")
    assert r.status_code == 201 and r.json()["tier"] == "BRONZE" and r.json()["status"] == "active"
    r = api.get(f"{BASE}/members/C-9/")
    assert r.json()["email"] == "c9@example.com" and r.json()["segments"] == []
    r = api.patch(f"{BASE}/members/C-9/", {"name": "Cee Nine", "status": "suspended"}, format="json")
    assert r.status_code == 200 and r.json()["name"] == "Cee Nine" and r.json()["status"] == "suspended"
    r = api.get(f"{BASE}/members/", {"status": "suspended"})
    assert [m["external_id"] for m in r.json()["results"]] == ["C-9"]


@pytest.mark.django_db
def test_balances_ledger_adjustments_and_tiers(api, member, metric, tiers):
    r = api.post(
        f"{BASE}/members/{member.external_id}/adjustments/",
        {"metric": "points", "amount": 120, "reason": "goodwill"},
        format="json",
    )
    assert r.status_code == 201 and r.json()["amount"] == 120 and r.json()["kind"] == "adjustment"
    r = api.get(f"{BASE}/members/{member.external_id}/balances/")
    [row] = r.json()
    assert (row["metric"], row["balance"], row["pending"], row["debt"]) == ("points", 120, 0, 0)
    assert row["expiring"][0]["amount"] == 120
    r = api.get(f"{BASE}/members/{member.external_id}/ledger/", {"kind": "adjustment"})
    [entry] = r.json()["results"]
    assert entry["source"] == {"type": "adjustment", "id": None} and entry["reverses"] is None
    r = api.post(f"{BASE}/members/{member.external_id}/tier", {"tier": "GOLD", "reason": "VIP"}, format="json")
    assert r.status_code == 201 and r.json()["tier"] == "GOLD"
    r = api.get(f"{BASE}/members/{member.external_id}/tier-history/")
    assert [h["tier"] for h in r.json()["results"]] == ["GOLD", "BRONZE"]
    assert [t["code"] for t in api.get(f"{BASE}/tiers/").json()["results"]] == ["BRONZE", "SILVER", "GOLD"]
    assert api.get(f"{BASE}/metrics/").json()["results"] == [
        {"code": "points", "name": "Points", "expiry_days": 365, "pending_days": 0}
    ]


@pytest.mark.django_db
def test_configuration_endpoints_need_the_campaign_manager_role(api, campaign_manager_user, db):
    assert_error(
        api.post(f"{BASE}/metrics/", {"code": "miles", "name": "Miles"}, format="json"), 403, "permission_denied"
    )
    manager = api_client_for(campaign_manager_user)
    assert manager.post(f"{BASE}/metrics/", {"code": "miles", "name": "Miles"}, format="json").status_code == 201
    assert_error(
        manager.post(f"{BASE}/metrics/", {"code": "miles", "name": "Again"}, format="json"), 409, "already_exists"
    )
    r = manager.post(
        f"{BASE}/tiers/",
        {"code": "PLATINUM", "name": "Platinum", "rank": 9, "spend_threshold": "5000.00"},
        format="json",
    )
    assert r.status_code == 201
    r = manager.post(
        f"{BASE}/rewards/",
        {
            "external_id": "MUG",
            "name": "Mug",
            "type": "physical_product",
            "metric": "miles",
            "points": 300,
            "stock": 10,
            "eligible_tiers": ["PLATINUM"],
        },
        format="json",
    )
    assert r.status_code == 201 and r.json()["eligible_tiers"] == ["PLATINUM"] and r.json()["campaign"] is None
    r = manager.patch(f"{BASE}/rewards/MUG/", {"stock": 5, "active": False}, format="json")
    assert r.json()["stock"] == 5 and r.json()["active"] is False
    assert api.get(f"{BASE}/rewards/MUG/").json()["name"] == "Mug"
    assert_error(
        manager.patch(f"{BASE}/rewards/MUG/", {"external_id": "CUP"}, format="json"), 400, "invalid", "external_id"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path,body,status,code,field",
    [
        ("members/M-1/adjustments/", {"metric": "points", "amount": "lots", "reason": "x"}, 400, "invalid", "amount"),
        ("members/M-1/adjustments/", {"metric": "points", "amount": 1.5, "reason": "x"}, 400, "invalid", "amount"),
        ("members/M-1/adjustments/", {"metric": "points", "amount": 10**15, "reason": "x"}, 400, "invalid", "amount"),
        ("members/M-1/adjustments/", {"metric": "points", "amount": 0, "reason": "x"}, 400, "invalid", "amount"),
        (
            "members/M-1/adjustments/",
            {"metric": "points", "amount": -5, "reason": "x"},
            409,
            "insufficient_points",
            None,
        ),
        ("members/M-1/adjustments/", {"metric": "nope", "amount": 5, "reason": "x"}, 400, "invalid", "metric"),
        ("members/M-1/adjustments/", {"metric": "points", "amount": 5}, 400, "invalid", "reason"),
        ("members/NOPE/adjustments/", {"metric": "points", "amount": 5, "reason": "x"}, 404, "not_found", None),
        ("members/", {"external_id": "M-1"}, 409, "already_exists", "external_id"),
        ("members/", {"external_id": ""}, 400, "invalid", "external_id"),
        ("members/", {"external_id": "X" * 65}, 400, "invalid", "external_id"),
        ("members/", {"external_id": "N", "email": "not-an-email"}, 400, "invalid", "email"),
        ("members/", {"external_id": "N", "tier": "DIAMOND"}, 400, "invalid", "tier"),
        ("members/", ["a", "list"], 400, "invalid", None),
        ("members/M-1/tier", {"tier": "BRONZE", "reason": "same"}, 409, "already_in_tier", None),
        ("members/M-1/tier", {"tier": 7, "reason": "x"}, 400, "invalid", "tier"),
    ],
)
def test_bad_input_is_a_4xx_in_the_error_shape_and_writes_nothing(
    api, member, metric, writes, path, body, status, code, field
):
    before = writes()
    assert_error(api.post(f"{BASE}/{path}", body, format="json"), status, code, field)
    assert writes() == before


@pytest.mark.django_db
def test_malformed_json_and_wrong_content(api, member, writes):
    before = writes()
    r = api.post(f"{BASE}/members/", data='{"external_id": "X",', content_type="application/json")
    assert_error(r, 400, "malformed_request")
    r = api.post(f"{BASE}/members/", data="external_id=X", content_type="text/plain")
    assert_error(r, 415, "unsupported_media_type")
    assert writes() == before


@pytest.mark.django_db
def test_idempotency_key_replays_or_refuses(api, member, metric):
    url = f"{BASE}/members/{member.external_id}/adjustments/"
    body = {"metric": "points", "amount": 50, "reason": "goodwill"}
    first = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert LedgerEntry.objects.count() == 1
    other = api.post(url, {**body, "amount": 51}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert_error(other, 422, "idempotency_key_reused")
    assert LedgerEntry.objects.count() == 1
    # a refusal is remembered too: the retry gets the same answer and nothing happens
    refused = api.post(url, {**body, "amount": -500}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert_error(refused, 409, "insufficient_points")
    assert api.post(url, {**body, "amount": -500}, format="json", HTTP_IDEMPOTENCY_KEY="k-2").json() == refused.json()
    assert_error(api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="x" * 256), 400, "invalid")
    assert IdempotencyRecord.objects.count() == 2


@pytest.mark.django_db
def test_auth_and_roles(member, auditor_user, approver_user):
    assert_error(APIClient().get(f"{BASE}/members/"), 401, "not_authenticated")
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token nope")
    assert_error(bad.get(f"{BASE}/members/"), 401, "authentication_failed")
    auditor = api_client_for(auditor_user)
    assert auditor.get(f"{BASE}/members/{member.external_id}/").status_code == 200
    assert_error(auditor.post(f"{BASE}/members/", {"external_id": "Z"}, format="json"), 403, "permission_denied")
    assert_error(
        api_client_for(approver_user).post(
            f"{BASE}/members/{member.external_id}/adjustments/",
            {"metric": "points", "amount": 5, "reason": "x"},
            format="json",
        ),
        403,
        "permission_denied",
    )


@pytest.mark.django_db
def test_pagination_caps_page_size(api, tiers):
    for i in range(7):
        services.enroll_member(external_id=f"P{i}", actor=SYSTEM)
    r = api.get(f"{BASE}/members/", {"page_size": 3, "page": 2})
    assert len(r.json()["results"]) == 3 and r.json()["count"] == 7
    capped = api.get(f"{BASE}/members/", {"page_size": 100000})
    assert capped.status_code == 200 and len(capped.json()["results"]) == 7
    from loyalty.api.pagination import PageNumberPagination

    assert PageNumberPagination.max_page_size == 500
    assert_error(api.get(f"{BASE}/members/", {"page": 99}), 404, "not_found")


@pytest.mark.django_db
def test_unknown_member_everywhere_is_404(api, metric):
    for path in ["", "balances/", "ledger/", "tier-history/"]:
        assert_error(api.get(f"{BASE}/members/NOPE/{path}"), 404, "not_found")


@pytest.mark.django_db
def test_openapi_schema_lists_every_endpoint(api):
    r = api.get(reverse("schema"), {"format": "json"})
    assert r.status_code == 200
    paths = set(r.json()["paths"])
    for p in [
        "/api/v1/members/",
        "/api/v1/members/{external_id}/",
        "/api/v1/members/{external_id}/balances/",
        "/api/v1/members/{external_id}/ledger/",
        "/api/v1/members/{external_id}/adjustments/",
        "/api/v1/members/{external_id}/tier",
        "/api/v1/members/{external_id}/tier-history/",
        "/api/v1/metrics/",
        "/api/v1/tiers/",
        "/api/v1/rewards/",
        "/api/v1/rewards/{external_id}/",
    ]:
        assert p in paths, p
    assert api.get("/api/docs/").status_code == 200


@pytest.mark.django_db
def test_openapi_schema_documents_the_idempotency_key_on_every_post_that_acts(api):
    paths = api.get(reverse("schema"), {"format": "json"}).json()["paths"]
    posts = {path: ops["post"] for path, ops in paths.items() if "post" in ops}
    without = sorted(
        path for path, op in posts.items() if not any(p["name"] == "Idempotency-Key" for p in op.get("parameters", []))
    )
    assert without == ["/api/v1/codes/validate"]  # a dry run: nothing to do twice
    header = next(p for p in posts["/api/v1/members/"]["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and not header.get("required", False)
    assert "requestBody" in posts["/api/v1/members/"] and "201" in posts["/api/v1/members/"]["responses"]


@pytest.mark.slow
def test_openapi_schema_validates(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.read_text().startswith("openapi: 3")


@pytest.mark.django_db
def test_oversized_body_is_a_400_in_the_error_shape(api, settings, writes):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = writes()
    r = api.post(f"{BASE}/members/", {"external_id": "BIG", "name": "x" * 5000}, format="json")
    assert_error(r, 400, "malformed_request")
    assert writes() == before


@pytest.mark.django_db
def test_invalid_input_with_a_key_is_not_stored_so_a_corrected_retry_runs(api, member, metric):
    url = f"{BASE}/members/{member.external_id}/adjustments/"
    bad = api.post(url, {"metric": "points", "amount": 5, "reason": " "}, format="json", HTTP_IDEMPOTENCY_KEY="k-9")
    assert bad.status_code == 400
    ok = api.post(url, {"metric": "points", "amount": 5, "reason": "fixed"}, format="json", HTTP_IDEMPOTENCY_KEY="k-9")
    assert ok.status_code == 201 and LedgerEntry.objects.count() == 1
