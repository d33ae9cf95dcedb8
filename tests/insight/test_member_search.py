"""Search that finds people (issue 17): the admin list, the home search box and GET /members/?search=.

The same test runs on SQLite and, in the PostgreSQL pass, against the pg_trgm indexes; there it
also checks that the planner can use them.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from loyalty import selectors, services
from loyalty.kernel import SYSTEM
from loyalty.models import Member
from tests.helpers import BASE, ok

pytestmark = pytest.mark.django_db

TERMS = ["brown", "Ann Brow", "ann.brown", "demo-00022", "447000000022", "+44 7000 000022", "  BROWN  "]


@pytest.fixture
def people(tiers):
    def enrol(external_id, name, email, phone):
        return services.enroll_member(external_id=external_id, name=name, email=email, phone=phone, actor=SYSTEM)

    return {
        "ann": enrol("DEMO-00022", "Ann Brown", "ann.brown@example.com", "+447000000022"),
        # Similar, and found by none of the terms.
        "green": enrol("DEMO-00021", "Ann Green", "ann.green@example.com", "+447000000021"),
        "tom": enrol("DEMO-00122", "Tom Brow", "tom.brow@example.com", "+447000000122"),
        "dana": enrol("DEMO-01022", "Dana Black", "dana.black@example.net", "+447000001022"),
    }


@pytest.mark.parametrize("term", TERMS)
def test_each_term_finds_ann_brown_and_nobody_else(people, term):
    found = list(selectors.search_members(Member.objects.all(), term))
    assert found == [people["ann"]]


@pytest.mark.parametrize("term", TERMS)
def test_the_admin_member_list_finds_her(people, admin_user, term):
    client = Client()
    client.force_login(admin_user)
    page = client.get("/admin/loyalty/member/", {"q": term})
    assert page.status_code == 200
    assert [m.pk for m in page.context["cl"].result_list] == [people["ann"].pk]


@pytest.mark.parametrize("term", TERMS[:5])
def test_the_api_search_finds_her(people, api, term):
    body = ok(api.get(f"{BASE}/members/", {"search": term}))
    assert [m["external_id"] for m in body["results"]] == ["DEMO-00022"]


def test_short_terms_match_only_the_start_of_a_name_or_a_whole_id(people):
    assert set(selectors.search_members(Member.objects.all(), "an")) == {people["ann"], people["green"]}
    assert not selectors.search_members(Member.objects.all(), "ro").exists()


def test_a_phone_is_found_by_its_last_digits_not_by_a_middle_part(people):
    assert list(selectors.search_members(Member.objects.all(), "000022")) == [people["ann"]]
    assert list(selectors.search_members(Member.objects.all(), "7000 000022")) == [people["ann"]]
    assert not selectors.search_members(Member.objects.all(), "4470000").exists()


def test_an_empty_term_filters_nothing(people):
    assert selectors.search_members(Member.objects.all(), "   ").count() == 4


def test_postgres_can_use_the_trigram_indexes(people, postgres_only):
    with connection.cursor() as cursor:
        cursor.execute("SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'")
        assert cursor.fetchone() == ("pg_trgm",)
        cursor.execute("SET enable_seqscan = off")
        qs = selectors.search_members(Member.objects.order_by(), "brown")
        plan = qs.explain()
        phone_plan = selectors.search_members(Member.objects.order_by(), "447000000022").explain()
        cursor.execute("SET enable_seqscan = on")
    assert "member_name_trgm" in plan and "member_email_trgm" in plan, plan
    assert "member_phone_reversed" in phone_plan and "member_external_id_upper" in phone_plan, phone_plan
