"""The loyalty admin, driven through the Django test client."""

import datetime as dt
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from loyalty import services
from loyalty.exceptions import Conflict
from loyalty.kernel import SYSTEM
from loyalty.models import (
    IdempotencyRecord,
    LedgerEntry,
    LotConsumption,
    Member,
    Metric,
    PointBalance,
    PointLot,
    Reward,
    Segment,
    TierMembership,
)
from tests.helpers import admin_url, login, message_links, messages_of

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")  # whitenoise without collectstatic


def url(name, *args, query=""):
    return admin_url(f"loyalty_{name}", *args, query=query)


@pytest.fixture
def data(member, metric, tiers, support_user):
    """One member with credits, a debit (so consumptions exist), a reward, a segment and a record."""
    status = Metric.objects.create(code="status_credits", name="Status credits")
    soon = timezone.now() + dt.timedelta(days=10)
    services.credit_points(member=member, metric=metric, amount=500, reason="Purchase", expires_at=soon, actor=SYSTEM)
    services.credit_points(member=member, metric=metric, amount=300, reason="Purchase", actor=SYSTEM)
    services.credit_points(member=member, metric=status, amount=20, reason="Purchase", actor=SYSTEM)
    services.debit_points(member=member, metric=metric, amount=200, reason="Redeemed mug", actor=SYSTEM)
    services.change_tier(member=member, tier=tiers["SILVER"], actor=support_user, reason="VIP request")
    reward = Reward.objects.create(external_id="RW-1", name="Mug", type="physical_product", metric=metric, points=100)
    reward.eligible_tiers.set([tiers["GOLD"]])
    segment = Segment.objects.create(code="vip", name="VIP")
    segment.members.add(member)
    IdempotencyRecord.objects.create(user=support_user, key="k-1", method="POST", path="/api/v1/x", request_hash="h")
    member.refresh_from_db()
    return {"member": member, "metric": metric, "status": status, "soon": soon, "reward": reward, "segment": segment}


MODELS = [
    Member,
    Metric,
    LedgerEntry,
    PointLot,
    PointBalance,
    LotConsumption,
    Reward,
    Segment,
    TierMembership,
    IdempotencyRecord,
]


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_changelist_and_change_page_renders(data, admin_user, tiers, model):
    client = login(admin_user)
    name = model._meta.model_name
    assert client.get(url(f"{name}_changelist")).status_code == 200
    obj = model.objects.order_by("pk").first()
    assert obj is not None
    assert client.get(url(f"{name}_change", obj.pk)).status_code == 200


@pytest.mark.django_db
def test_tier_admin_and_history_pages_render(data, admin_user, tiers):
    client = login(admin_user)
    assert client.get(url("tier_changelist")).status_code == 200
    assert client.get(url("tier_change", tiers["GOLD"].pk)).status_code == 200
    member = data["member"]
    response = client.get(url("member_history", member.pk))
    assert response.status_code == 200
    assert b"VIP request" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("term", ["ann@example.com", "M-1", "Ann", "ann ex", "+4470000001"])
def test_member_search_by_email_id_name_and_phone(member, admin_user, term):
    Member.objects.filter(pk=member.pk).update(phone="+4470000001")
    services.enroll_member(
        external_id="M-2", email="bob@example.com", name="Bob Other", phone="+4470000002", actor=SYSTEM
    )
    response = login(admin_user).get(url("member_changelist"), {"q": term})
    assert response.status_code == 200
    assert [m.external_id for m in response.context["cl"].result_list] == ["M-1"]


@pytest.mark.django_db
def test_member_search_finds_a_partial_email_and_not_the_others(member, admin_user):
    services.enroll_member(external_id="M-2", email="bob@example.com", name="Bob Other", actor=SYSTEM)
    response = login(admin_user).get(url("member_changelist", query="q=ann%40exa"))
    assert [m.external_id for m in response.context["cl"].result_list] == ["M-1"]


@pytest.mark.django_db
def test_member_autocomplete_uses_the_same_search(member, admin_user):
    response = login(admin_user).get(
        reverse("admin:autocomplete"),
        {"term": "ann@example.com", "app_label": "loyalty", "model_name": "segment", "field_name": "members"},
    )
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [str(member.pk)]


@pytest.mark.django_db
def test_member_page_shows_balances_expiries_recent_entries_and_tier_history(data, support_user):
    member = data["member"]
    response = login(support_user).get(url("member_change", member.pk))
    assert response.status_code == 200
    html = response.content.decode()
    # balances per metric: 500 + 300 - 200 points, the soonest lot (500) was consumed first
    assert [(b["metric"], b["balance"]) for b in response.context["balances"]] == [
        ("points", 600),
        ("status_credits", 20),
    ]
    assert 'data-metric="points"><strong>600</strong>' in html
    assert f"300 on {data['soon']:%Y-%m-%d}" in html  # next expiry with its amount
    # recent entries, newest first, with the link to the full ledger of this member
    assert [e.amount for e in response.context["recent_entries"]] == [-200, 20, 300, 500]
    assert "Redeemed mug" in html
    assert url("ledgerentry_changelist", query=f"member__id__exact={member.pk}").replace("&", "&amp;") in html
    # tier history: Bronze closed, Silver current
    assert [t.tier.code for t in response.context["tier_history"]] == ["SILVER", "BRONZE"]
    assert "VIP request" in html and "<em>current</em>" in html
    # the support agent gets both action forms
    assert 'id="adjust-points-form"' in html and 'id="change-tier-form"' in html


@pytest.mark.django_db
def test_member_page_shows_only_twenty_recent_entries(member, metric, admin_user):
    for _ in range(25):
        services.credit_points(member=member, metric=metric, amount=1, actor=SYSTEM)
    response = login(admin_user).get(url("member_change", member.pk))
    assert len(response.context["recent_entries"]) == 20


@pytest.mark.django_db
def test_adjust_points_credits_through_the_service(data, support_user):
    member, metric = data["member"], data["metric"]
    client = login(support_user)
    page = client.get(url("member_change", member.pk))
    token = page.context["adjust_form"]["token"].value()
    response = client.post(
        url("member_adjust_points", member.pk),
        {"metric": metric.pk, "amount": "150", "reason": "Goodwill", "token": token},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == url("member_change", member.pk)
    entry = LedgerEntry.objects.filter(member=member).order_by("-id").first()
    assert (entry.kind, entry.amount, entry.actor, entry.reason) == ("adjustment", 150, support_user, "Goodwill")
    assert any(f"Adjusted +150 points (ledger entry #{entry.pk})." in m for m in messages_of(response))
    assert message_links(response) == [admin_url("loyalty_ledgerentry_change", entry.pk)]
    assert PointBalance.objects.get(member=member, metric=metric).balance == 750
    assert 'data-metric="points"><strong>750</strong>' in response.content.decode()
    # a double submit of the same rendered form credits nothing twice
    again = client.post(
        url("member_adjust_points", member.pk),
        {"metric": metric.pk, "amount": "150", "reason": "Goodwill", "token": token},
        follow=True,
    )
    assert any("already submitted" in m for m in messages_of(again))
    assert LedgerEntry.objects.filter(member=member, kind="adjustment").count() == 1


@pytest.mark.django_db
def test_adjust_points_debit_and_overdraw(data, support_user):
    member, metric = data["member"], data["metric"]
    client = login(support_user)
    client.post(url("member_adjust_points", member.pk), {"metric": metric.pk, "amount": "-100", "reason": "Fix"})
    assert PointBalance.objects.get(member=member, metric=metric).balance == 500
    before = LedgerEntry.objects.count()
    response = client.post(
        url("member_adjust_points", member.pk),
        {"metric": metric.pk, "amount": "-5000", "reason": "Too much"},
        follow=True,
    )
    assert any("Points not adjusted" in m and "500 points" in m for m in messages_of(response))
    assert LedgerEntry.objects.count() == before
    assert PointBalance.objects.get(member=member, metric=metric).balance == 500


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload, expected",
    [
        ({"amount": "0", "reason": "x"}, "Must be non-zero"),
        ({"amount": "10", "reason": "  "}, "Reason: This field is required"),
        ({"amount": "abc", "reason": "x"}, "Enter a whole number"),
        ({"amount": "10", "reason": "x", "token": "../../etc"}, "Invalid form token"),
    ],
)
def test_adjust_points_rejects_bad_input(data, support_user, payload, expected):
    before = LedgerEntry.objects.count()
    response = login(support_user).post(
        url("member_adjust_points", data["member"].pk), {"metric": data["metric"].pk, **payload}, follow=True
    )
    assert any(expected in m for m in messages_of(response)), messages_of(response)
    assert LedgerEntry.objects.count() == before


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["auditor_user", "approver_user"])
def test_adjust_points_without_permission_is_403(data, request, who):
    user = request.getfixturevalue(who)
    member, metric = data["member"], data["metric"]
    before = LedgerEntry.objects.count()
    client = login(user)
    assert 'id="adjust-points-form"' not in client.get(url("member_change", member.pk)).content.decode()
    response = client.post(url("member_adjust_points", member.pk), {"metric": metric.pk, "amount": "10", "reason": "x"})
    assert response.status_code == 403
    response = client.post(url("member_change_tier", member.pk), {"tier": member.tier_id, "reason": "x"})
    assert response.status_code == 403
    assert LedgerEntry.objects.count() == before


@pytest.mark.django_db
def test_adjust_points_needs_post_and_csrf(data, support_user):
    member, metric = data["member"], data["metric"]
    client = Client(enforce_csrf_checks=True)
    client.force_login(support_user)
    assert client.get(url("member_adjust_points", member.pk)).status_code == 405
    response = client.post(url("member_adjust_points", member.pk), {"metric": metric.pk, "amount": "10", "reason": "x"})
    assert response.status_code == 403
    assert not LedgerEntry.objects.filter(kind="adjustment").exists()


@pytest.mark.django_db
def test_anonymous_users_are_sent_to_the_login(data):
    response = Client().post(url("member_adjust_points", data["member"].pk), {"amount": "10"})
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not LedgerEntry.objects.filter(kind="adjustment").exists()


@pytest.mark.django_db
def test_change_tier_form(data, support_user, tiers):
    member = data["member"]
    client = login(support_user)
    response = client.post(
        url("member_change_tier", member.pk), {"tier": tiers["GOLD"].pk, "reason": "Complaint"}, follow=True
    )
    assert any("now Gold" in m for m in messages_of(response))
    member.refresh_from_db()
    assert member.tier == tiers["GOLD"]
    current = TierMembership.objects.get(member=member, valid_to__isnull=True)
    assert (current.changed_by, current.reason, current.cause) == (support_user, "Complaint", "manual")
    # the same tier again is a domain error, shown as a message; nothing changes
    response = client.post(
        url("member_change_tier", member.pk), {"tier": tiers["GOLD"].pk, "reason": "Again"}, follow=True
    )
    assert any("already Gold" in m for m in messages_of(response))
    assert TierMembership.objects.filter(member=member).count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["ledgerentry", "pointlot", "pointbalance", "lotconsumption", "idempotencyrecord"])
def test_derived_tables_are_view_only(data, admin_user, name):
    model = {m._meta.model_name: m for m in MODELS}[name]
    obj = model.objects.order_by("pk").first()
    client = login(admin_user)
    assert client.get(url(f"{name}_add")).status_code == 403
    assert client.get(url(f"{name}_delete", obj.pk)).status_code == 403
    changelist = client.get(url(f"{name}_changelist"))
    assert "delete_selected" not in changelist.context["cl"].model_admin.get_actions(changelist.wsgi_request)
    assert url(f"{name}_add") not in changelist.content.decode()
    page = client.get(url(f"{name}_change", obj.pk))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(url(f"{name}_change", obj.pk), {}).status_code == 403


@pytest.mark.django_db
def test_ledger_changelist_filters(data, admin_user, member, tiers):
    other = services.enroll_member(external_id="M-2", actor=SYSTEM)
    services.credit_points(member=other, metric=data["metric"], amount=7, actor=SYSTEM)
    client = login(admin_user)
    for query in [f"member__id__exact={member.pk}", f"member={member.pk}"]:
        entries = client.get(url("ledgerentry_changelist", query=query)).context["cl"].result_list
        assert {e.member_id for e in entries} == {member.pk} and len(entries) == 4
    entries = client.get(url("ledgerentry_changelist", query="kind__exact=redeem")).context["cl"].result_list
    assert [e.amount for e in entries] == [-200]
    entries = client.get(url("ledgerentry_changelist", query=f"metric__id__exact={data['status'].pk}")).context["cl"]
    assert [e.amount for e in entries.result_list] == [20]
    entries = client.get(url("ledgerentry_changelist", query="q=M-2")).context["cl"].result_list
    assert [e.amount for e in entries] == [7]


@pytest.mark.django_db
def test_debit_entry_page_shows_the_lots_it_consumed(data, admin_user):
    debit = LedgerEntry.objects.get(kind="redeem")
    response = login(admin_user).get(url("ledgerentry_change", debit.pk))
    assert b"points taken from lots" in response.content.lower()


@pytest.mark.django_db
def test_invalid_status_transition_is_refused(data, support_user):
    member = data["member"]
    client = login(support_user)
    form = {
        "name": member.name,
        "email": member.email,
        "phone": "",
        "status": "closed",
        "change_reason": "Member asked",
    }
    response = client.post(url("member_change", member.pk), form, follow=True)
    assert response.status_code == 200
    member.refresh_from_db()
    assert member.status == "closed"
    assert member.history.first().history_change_reason == "Member asked"
    assert member.history.first().history_user == support_user
    response = client.post(url("member_change", member.pk), {**form, "status": "active"})
    assert response.status_code == 200  # the form again, with the error
    assert "status cannot move from closed to active" in response.content.decode()
    member.refresh_from_db()
    assert member.status == "closed"


@pytest.mark.django_db
def test_a_service_refusal_while_saving_is_shown_and_nothing_saved(data, support_user):
    member = data["member"]
    form = {"name": "New name", "email": member.email, "phone": "", "status": "active"}
    with mock.patch.object(services, "update_member", side_effect=Conflict("Somebody else changed it.")):
        response = login(support_user).post(url("member_change", member.pk), form, follow=True)
    msgs = messages_of(response)
    assert "Somebody else changed it." in msgs
    assert not any("successfully" in m for m in msgs)
    member.refresh_from_db()
    assert member.name == "Ann Example"


@pytest.mark.django_db
def test_member_add_enrols_through_the_service(tiers, support_user):
    response = login(support_user).post(
        url("member_add"),
        {
            "external_id": " C-77 ",
            "name": "Cleo",
            "email": "cleo@example.com",
            "phone": "",
            "tier": tiers["SILVER"].pk,
        },
    )
    assert response.status_code == 302, response.content
    member = Member.objects.get(external_id="C-77")
    assert member.tier == tiers["SILVER"]
    [interval] = TierMembership.objects.filter(member=member)
    assert (interval.tier, interval.cause, interval.changed_by) == (tiers["SILVER"], "enrolment", support_user)
    assert member.history.first().history_user == support_user


@pytest.mark.django_db
def test_member_add_refuses_a_duplicate_id(member, support_user):
    response = login(support_user).post(url("member_add"), {"external_id": "M-1", "name": "Dup"})
    assert response.status_code == 200
    assert Member.objects.count() == 1


@pytest.mark.django_db
def test_members_cannot_be_deleted_and_history_cannot_be_reverted(data, admin_user):
    member = data["member"]
    client = login(admin_user)
    assert client.get(url("member_delete", member.pk)).status_code == 403
    version = member.history.order_by("history_id").first()
    response = client.post(
        url("member_simple_history", member.pk, version.history_id),
        {"name": "Reverted", "email": "", "phone": "", "status": "active"},
    )
    assert response.status_code == 403
    member.refresh_from_db()
    assert member.name == "Ann Example"


@pytest.mark.django_db
def test_auditor_can_view_but_not_change(data, auditor_user):
    member = data["member"]
    client = login(auditor_user)
    for name in ["member", "ledgerentry", "pointlot", "pointbalance", "reward", "segment", "tiermembership"]:
        assert client.get(url(f"{name}_changelist")).status_code == 200, name
    page = client.get(url("member_change", member.pk))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html and 'id="adjust-points-form"' not in html and 'id="member-balances"' in html
    response = client.post(url("member_change", member.pk), {"name": "X", "email": "", "status": "active"})
    assert response.status_code == 403
    assert client.get(url("member_add")).status_code == 403
    member.refresh_from_db()
    assert member.name == "Ann Example"


def _add_rows(metric, count, start):
    for i in range(start, start + count):
        m = services.enroll_member(external_id=f"Q-{i}", name=f"Q {i}", actor=SYSTEM)
        services.credit_points(member=m, metric=metric, amount=10 + i, actor=SYSTEM)
        services.debit_points(member=m, metric=metric, amount=5, actor=SYSTEM)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["member", "ledgerentry", "pointlot", "pointbalance", "tiermembership", "lotconsumption"]
)
def test_changelist_query_count_is_small_and_constant(
    metric, tiers, support_user, admin_user, django_assert_max_num_queries, name
):
    user = admin_user if name == "lotconsumption" else support_user
    client = login(user)

    def count_queries():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url(f"{name}_changelist")).status_code == 200
        return len(ctx.captured_queries)

    _add_rows(metric, 3, 0)
    small = count_queries()
    _add_rows(metric, 30, 100)
    with django_assert_max_num_queries(10):
        assert client.get(url(f"{name}_changelist")).status_code == 200
    assert count_queries() == small


@pytest.mark.django_db
def test_member_page_query_count_is_bounded(data, support_user, django_assert_max_num_queries):
    client = login(support_user)
    client.get(url("member_change", data["member"].pk))
    for _ in range(20):
        services.credit_points(member=data["member"], metric=data["metric"], amount=3, actor=SYSTEM)
    with django_assert_max_num_queries(30):
        assert client.get(url("member_change", data["member"].pk)).status_code == 200


@pytest.mark.django_db
def test_reward_add_through_admin(metric, tiers, admin_user):
    response = login(admin_user).post(
        url("reward_add"),
        {
            "external_id": "RW-9",
            "name": "Badge",
            "description": "",
            "type": "badge",
            "metric": metric.pk,
            "points": "10",
            "stock": "",
            "active": "on",
            "eligible_tiers": [tiers["GOLD"].pk],
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    reward = Reward.objects.get(external_id="RW-9")
    assert list(reward.eligible_tiers.all()) == [tiers["GOLD"]]


@pytest.mark.django_db
def test_change_form_saved_through_a_durable_service(member, admin_user):
    """Services are ``@outer_service`` (``atomic(durable=True)``, refused inside any other atomic
    block); Django wraps the change form in ``transaction.atomic``. The member form runs outside it
    (``loyalty.kernel.admin.ServiceSaveMixin``), so the durable service saves."""
    assert services.update_member.__outer_service__
    client = login(admin_user)
    form = client.get(url("member_change", member.pk)).context["adminform"].form
    data = {name: form[name].value() or "" for name in ("name", "email", "phone", "status")}
    data.update(name="Renamed", change_reason="Typo", _save="Save")
    response = client.post(url("member_change", member.pk), data, follow=True)
    assert response.status_code == 200
    member.refresh_from_db()
    assert member.name == "Renamed"
