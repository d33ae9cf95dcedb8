"""Input that PostgreSQL itself would refuse: NUL characters anywhere (path, query, body, JSON
keys) and timestamps with offsets beyond PostgreSQL's ±15:59. Each is a 4xx with nothing written;
run in the PostgreSQL pass, these were server errors before (found by fuzzing the API)."""

import datetime as dt

import pytest
from django.test import Client

from loyalty import services
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, Member
from redemptions.models import Redemption
from tests.helpers import BASE, assert_error


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        f"{BASE}/members/A%00B/",
        f"{BASE}/members/A%00B/ledger/",
        f"{BASE}/members/?search=%00",
        f"{BASE}/redemptions/?member=X%00Y",
        f"{BASE}/codes/AB%00C/",
        f"{BASE}/members/?x%00=1",
    ],
)
def test_nul_in_the_url_is_a_400_in_the_error_shape(api, member, path):
    assert_error(api.get(path), 400, "malformed_request")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body,content_type",
    [
        ('{"member": "M-1", "reward": "R\\u0000"}', "application/json"),
        ('{"member": "M-1", "reward": "R", "note\\u0000": "x"}', "application/json"),
        ('{"member": "M-1", "reward": "R", "quantity": 1, "meta": ["\\u0000"]}', "application/json"),
        ("member=M-1&reward=R%00", "application/x-www-form-urlencoded"),
    ],
)
def test_nul_in_a_body_is_a_400_and_writes_nothing(api, member, body, content_type):
    before = (Member.objects.count(), LedgerEntry.objects.count(), Redemption.objects.count())
    r = api.generic("POST", f"{BASE}/redemptions/", body, content_type=content_type)
    assert_error(r, 400, "malformed_request")
    assert "Null characters" in r.json()["detail"]
    assert (Member.objects.count(), LedgerEntry.objects.count(), Redemption.objects.count()) == before


@pytest.mark.django_db
def test_nul_in_the_admin_url_is_a_plain_400(admin_user):
    client = Client()
    client.force_login(admin_user)
    for path in ["/admin/loyalty/member/?q=%00", "/admin/loyalty/member/1%00/change/", "/admin/autocomplete/?term=%00"]:
        r = client.get(path)
        assert r.status_code == 400, path
        assert b"Null characters" in r.content
    assert client.get("/admin/loyalty/member/?q=anything").status_code == 200


@pytest.mark.django_db
def test_timestamp_filters_take_any_offset_and_compare_in_utc(api, member, metric):
    entry = services.adjust_points(member=member, metric=metric, amount=5, reason="goodwill", actor=SYSTEM)
    at = entry.created_at.astimezone(dt.timezone(dt.timedelta(hours=22)))  # Python can, PostgreSQL cannot
    url = f"{BASE}/members/{member.external_id}/ledger/"
    before = (at - dt.timedelta(seconds=1)).isoformat()
    after = (at + dt.timedelta(seconds=1)).isoformat()
    assert [e["id"] for e in api.get(url, {"created_after": before}).json()["results"]] == [entry.pk]
    assert api.get(url, {"created_after": after}).json()["results"] == []
    assert [e["id"] for e in api.get(url, {"created_before": after}).json()["results"]] == [entry.pk]
    for path in ("redemptions/", "retro-claims/"):
        r = api.get(f"{BASE}/{path}", {"created_after": "0747-05-18T20:37:58.16+22:00"})
        assert r.status_code == 200, r.content
    # beyond the last representable instant once in UTC
    assert_error(api.get(url, {"created_before": "9999-12-31T23:59:59-23:00"}), 400, "invalid", "created_before")
    assert_error(api.get(url, {"created_after": "2024-01-01T12:99:00Z"}), 400, "invalid", "created_after")


@pytest.mark.django_db
def test_an_impossible_time_in_a_body_is_a_400(admin_user):
    from tests.helpers import api_client_for

    manager = api_client_for(admin_user)
    r = manager.post(f"{BASE}/rule-sets/", {"name": "X", "valid_from": "2024-01-01T12:99:00Z"}, format="json")
    assert_error(r, 400, "invalid", "valid_from")
    r = manager.post(f"{BASE}/rule-sets/", {"name": "X", "valid_from": "2024-01-01T12:00:00+22:00"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["valid_from"].startswith("2023-12-31T")  # 14:00 UTC the day before, in the server's zone
