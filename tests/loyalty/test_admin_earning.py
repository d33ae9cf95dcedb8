"""The earning admin: purchases, rule sets (publish, new version, preview), trackers, program settings."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from loyalty import services
from loyalty.kernel import SYSTEM
from loyalty.models import (
    LedgerEntry,
    MemberTracker,
    ProgramSettings,
    RuleSet,
    Transaction,
    TransactionReturn,
)
from tests.helpers import BY_TIER, admin_url, login, messages_of

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")

FIXED = {"name": "Visit", "metric": "points", "action": "fixed", "points": 10}


def url(name, *args, query=""):
    return admin_url(f"loyalty_{name}", *args, query=query)


@pytest.fixture
def live_set(metric, tiers, admin_user):
    """A published rule set in force since 30 days ago: 10 points per purchase + tier share."""
    rule_set = services.create_rule_set(
        name="Base",
        valid_from=timezone.now() - dt.timedelta(days=30),
        rules=[FIXED, BY_TIER],
        actor=admin_user,
    )
    return services.publish_rule_set(rule_set=rule_set, actor=admin_user)


@pytest.fixture
def world(live_set, tiers, support_user):
    now = timezone.now()
    with time_machine.travel(now - dt.timedelta(days=10), tick=False):
        member = services.enroll_member(external_id="M-7", email="sam@example.com", name="Sam Shopper", actor=SYSTEM)
    loyal = services.record_transaction(
        external_id="B-100",
        occurred_at=now - dt.timedelta(days=2),
        amount=Decimal("200.00"),
        currency="EUR",
        store="AMS-1",
        channel="pos",
        member=member,
        actor=SYSTEM,
    )
    services.return_transaction(transaction_=loyal, amount=Decimal("50.00"), reason="Broken", actor=support_user)
    anonymous = services.record_transaction(
        external_id="B-200",
        occurred_at=now - dt.timedelta(days=1),
        amount=Decimal("80.00"),
        currency="EUR",
        store="RTM-2",
        actor=SYSTEM,
    )
    return {"loyal": loyal, "anonymous": anonymous, "member": member}


def formset_data(rules, prefix="rules", initial=0):
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rules)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for i, rule in enumerate(rules):
        for key, value in rule.items():
            data[f"{prefix}-{i}-{key}"] = value
    return data


# --- every page renders ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Transaction, TransactionReturn, RuleSet, MemberTracker], ids=lambda m: m.__name__)
def test_every_changelist_and_change_page_renders(world, admin_user, model):
    client = login(admin_user)
    name = model._meta.model_name
    assert client.get(url(f"{name}_changelist")).status_code == 200
    obj = model.objects.order_by("pk").first()
    assert client.get(url(f"{name}_change", obj.pk)).status_code == 200
    assert client.get(url(f"{name}_history", obj.pk)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("fixture", ["support_user", "approver_user", "auditor_user", "campaign_manager_user"])
def test_staff_roles_see_the_earning_pages(world, request, fixture):
    client = login(request.getfixturevalue(fixture))
    for name in ("transaction", "ruleset", "membertracker"):
        assert client.get(url(f"{name}_changelist")).status_code == 200
    assert client.get(url("transaction_change", world["loyal"].pk)).status_code == 200
    assert client.get(url("ruleset_preview")).status_code == 200
    assert client.get(url("programsettings_changelist"), follow=True).status_code == 200


# --- purchases -------------------------------------------------------------------------------


def results(response):
    return [t.external_id for t in response.context["cl"].result_list]


@pytest.mark.django_db
def test_transactions_search_and_filters(world, support_user):
    client = login(support_user)
    assert results(client.get(url("transaction_changelist", query="q=B-100"))) == ["B-100"]
    assert results(client.get(url("transaction_changelist", query="q=B-1"))) == []  # exact only
    assert results(client.get(url("transaction_changelist", query="q=M-7"))) == ["B-100"]
    assert results(client.get(url("transaction_changelist", query="loyalty=no"))) == ["B-200"]
    assert results(client.get(url("transaction_changelist", query="loyalty=yes"))) == ["B-100"]
    assert results(client.get(url("transaction_changelist", query="store=RTM-2"))) == ["B-200"]
    assert results(client.get(url("transaction_changelist", query="channel=pos"))) == ["B-100"]
    assert results(client.get(url("transaction_changelist", query="amount_min=100"))) == ["B-100"]
    assert results(client.get(url("transaction_changelist", query="amount_max=100&amount_min=80"))) == ["B-200"]
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    assert results(client.get(url("transaction_changelist", query=f"occurred_after={yesterday}"))) == ["B-200"]
    assert results(client.get(url("transaction_changelist", query=f"occurred_before={yesterday}"))) == [
        "B-200",
        "B-100",
    ]
    two_days = yesterday - dt.timedelta(days=1)
    both = f"occurred_after={two_days}&occurred_before={two_days}"
    assert results(client.get(url("transaction_changelist", query=both))) == ["B-100"]
    # bad input is ignored with a note, never a 500
    response = client.get(url("transaction_changelist", query="amount_min=abc&occurred_after=nope"))
    assert response.status_code == 200 and results(response) == ["B-200", "B-100"]
    assert b"Not a number." in response.content and b"Use YYYY-MM-DD." in response.content


@pytest.mark.django_db
def test_transaction_page_shows_the_breakdown_and_returns(world, support_user):
    response = login(support_user).get(url("transaction_change", world["loyal"].pk))
    html = response.content.decode()
    assert "Base v1" in html and "Tier share" in html and "BRONZE" in html
    assert "Broken" in html  # the return inline
    assert 'id="return-link"' in html


@pytest.mark.django_db
def test_transactions_are_read_only(world, admin_user):
    client = login(admin_user)
    assert client.get(url("transaction_add")).status_code == 403
    txn = world["anonymous"]
    response = client.post(url("transaction_change", txn.pk), {"amount": "1.00", "external_id": "X"})
    assert response.status_code == 403
    txn.refresh_from_db()
    assert txn.amount == Decimal("80.00")


@pytest.mark.django_db
def test_return_through_the_admin(world, support_user):
    txn = world["loyal"]
    client = login(support_user)
    assert client.get(url("transaction_return", txn.pk)).status_code == 200
    response = client.post(url("transaction_return", txn.pk), {"amount": "500", "reason": "Too much"}, follow=True)
    assert any("Nothing returned" in m and "150.00" in m for m in messages_of(response))
    response = client.post(url("transaction_return", txn.pk), {"amount": "", "reason": "Rest"}, follow=True)
    assert response.redirect_chain[-1][0] == url("transaction_change", txn.pk)
    assert any("Returned 150.00 of bill B-100" in m for m in messages_of(response))
    txn.refresh_from_db()
    assert txn.returned_amount == txn.amount
    assert LedgerEntry.objects.filter(member=world["member"], kind="return").count() == 2


@pytest.mark.django_db
def test_return_needs_the_permission(world, approver_user):
    client = login(approver_user)
    assert client.get(url("transaction_return", world["loyal"].pk)).status_code == 403
    assert 'id="return-link"' not in client.get(url("transaction_change", world["loyal"].pk)).content.decode()


@pytest.mark.django_db
def test_transactions_changelist_query_count_is_bounded(live_set, member, admin_user):
    now = timezone.now()
    for i in range(30):
        services.record_transaction(
            external_id=f"Q-{i}",
            occurred_at=now - dt.timedelta(hours=i + 1),
            amount=Decimal("10.00"),
            currency="EUR",
            member=member if i % 2 else None,
            actor=SYSTEM,
        )
    client = login(admin_user)
    client.get(url("transaction_changelist"))  # warm up (sessions, content types)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url("transaction_changelist", query="loyalty=yes&amount_min=1"))
    assert response.status_code == 200 and len(response.context["cl"].result_list) == 15
    assert len(ctx.captured_queries) <= 10, [q["sql"] for q in ctx.captured_queries]


# --- rule sets -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_published_rule_set_cannot_be_changed_in_the_admin(live_set, admin_user, metric):
    client = login(admin_user)
    page = client.get(url("ruleset_change", live_set.pk))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html and 'id="new-version-form"' in html and 'id="publish-form"' not in html
    rule = live_set.rules.order_by("position").first()
    data = {"name": "Hacked", "description": "", "valid_from_0": "2020-01-01", "valid_from_1": "00:00:00"}
    data.update(
        formset_data(
            [
                {
                    "id": rule.pk,
                    "rule_set": live_set.pk,
                    "name": "Hacked",
                    "metric": metric.pk,
                    "action": "fixed",
                    "points": "999",
                    "position": "0",
                }
            ],
            initial=1,
        )
    )
    response = client.post(url("ruleset_change", live_set.pk), data)
    assert response.status_code == 403
    live_set.refresh_from_db()
    rule.refresh_from_db()
    assert (live_set.name, rule.name, rule.points) == ("Base", "Visit", 10)
    assert client.post(url("ruleset_delete", live_set.pk)).status_code == 403


@pytest.mark.django_db
def test_draft_is_created_and_edited_through_the_services(admin_user, metric, tiers):
    client = login(admin_user)
    assert client.get(url("ruleset_add")).status_code == 200
    data = {
        "name": "Summer",
        "description": "Summer rules",
        "valid_from_0": "2031-06-01",
        "valid_from_1": "00:00:00",
        "valid_to_0": "2031-09-01",
        "valid_to_1": "00:00:00",
    }
    data.update(
        formset_data(
            [
                {"name": "Visit", "metric": metric.pk, "action": "fixed", "points": "5", "position": "0"},
                {
                    "name": "Share",
                    "metric": metric.pk,
                    "action": "percent_of_amount",
                    "percent_by_tier": "gold=20, SILVER=15",
                    "channels": "pos, web",
                    "position": "1",
                },
            ]
        )
    )
    response = client.post(url("ruleset_add"), data, follow=True)
    assert response.status_code == 200, response.content
    rule_set = RuleSet.objects.get(name="Summer")
    assert (rule_set.version, rule_set.status, rule_set.created_by) == (1, "draft", admin_user)
    rules = list(rule_set.rules.order_by("position"))
    assert [(r.name, r.points) for r in rules] == [("Visit", 5), ("Share", None)]
    assert rules[1].percent_by_tier == {"GOLD": 20, "SILVER": 15} and rules[1].channels == ["pos", "web"]
    assert rule_set.history.first().history_change_reason == "Draft created"

    # edit the draft: change a rule, delete the other
    edit = {k: v for k, v in data.items() if not k.startswith("rules-")}
    edit["name"] = "Summer"
    edit.update(
        formset_data(
            [
                {
                    "id": rules[0].pk,
                    "rule_set": rule_set.pk,
                    "name": "Visit",
                    "metric": metric.pk,
                    "action": "fixed",
                    "points": "7",
                    "position": "0",
                },
                {
                    "id": rules[1].pk,
                    "rule_set": rule_set.pk,
                    "name": "Share",
                    "metric": metric.pk,
                    "action": "percent_of_amount",
                    "percent_by_tier": "GOLD=20",
                    "position": "1",
                    "DELETE": "on",
                },
            ],
            initial=2,
        )
    )
    response = client.post(url("ruleset_change", rule_set.pk), edit, follow=True)
    assert response.status_code == 200
    assert [(r.name, r.points) for r in rule_set.rules.all()] == [("Visit", 7)]


@pytest.mark.django_db
def test_invalid_rule_is_a_form_error_and_nothing_changes(admin_user, metric, tiers):
    data = {"name": "Bad", "valid_from_0": "2031-06-01", "valid_from_1": "00:00:00"}
    data.update(
        formset_data(
            [
                {
                    "name": "Share",
                    "metric": metric.pk,
                    "action": "percent_of_amount",
                    "percent_by_tier": "PLATINUM=5",
                    "position": "0",
                }
            ]
        )
    )
    response = login(admin_user).post(url("ruleset_add"), data)
    assert response.status_code == 200
    assert "Unknown tier codes: PLATINUM" in response.content.decode()
    assert not RuleSet.objects.filter(name="Bad").exists()


@pytest.mark.django_db
def test_publish_with_overlap_shows_the_error_and_stays_draft(live_set, admin_user):
    clash = services.create_rule_set(
        name="Other", valid_from=timezone.now() + dt.timedelta(days=1), rules=[FIXED], actor=admin_user
    )
    response = login(admin_user).post(url("ruleset_publish", clash.pk), follow=True)
    assert response.redirect_chain[-1][0] == url("ruleset_change", clash.pk)
    assert any("Not published" in m and "overlaps published rule sets" in m for m in messages_of(response))
    clash.refresh_from_db()
    assert clash.status == "draft"


@pytest.mark.django_db
def test_new_version_then_publish_then_retire(live_set, admin_user):
    client = login(admin_user)
    response = client.post(url("ruleset_new_version", live_set.pk), {"valid_from": ""}, follow=True)
    draft = RuleSet.objects.get(name="Base", version=2)
    assert response.redirect_chain[-1][0] == url("ruleset_change", draft.pk)
    assert (draft.status, draft.previous, draft.rules.count()) == ("draft", live_set, 2)
    html = response.content.decode()
    assert 'id="publish-form"' in html and 'name="_save"' in html
    assert f'href="{url("ruleset_change", live_set.pk)}">v1</a>' in html  # the version list

    response = client.post(url("ruleset_publish", draft.pk), follow=True)
    assert any("is published" in m for m in messages_of(response))
    draft.refresh_from_db()
    live_set.refresh_from_db()
    assert draft.status == "published" and live_set.valid_to == draft.valid_from

    assert client.post(url("ruleset_retire", draft.pk), {"reason": ""}, follow=True).status_code == 200
    draft.refresh_from_db()
    assert draft.status == "published"
    response = client.post(url("ruleset_retire", draft.pk), {"reason": "Programme ends"}, follow=True)
    draft.refresh_from_db()
    assert draft.status == "retired"


@pytest.mark.django_db
def test_publish_needs_the_permission(admin_user, support_user, metric):
    draft = services.create_rule_set(name="D", valid_from=timezone.now(), rules=[FIXED], actor=admin_user)
    client = login(support_user)
    assert client.post(url("ruleset_publish", draft.pk)).status_code == 403
    assert client.get(url("ruleset_publish", draft.pk)).status_code == 405
    assert 'id="publish-form"' not in client.get(url("ruleset_change", draft.pk)).content.decode()
    draft.refresh_from_db()
    assert draft.status == "draft"


@pytest.mark.django_db
def test_preview_earning_shows_points_and_writes_nothing(world, support_user, tiers):
    client = login(support_user)
    before = (LedgerEntry.objects.count(), Transaction.objects.count(), MemberTracker.objects.count())
    when = (timezone.localtime() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.get(url("ruleset_preview"), {"member": "M-7", "occurred_at": when, "amount": "300"})
    assert response.status_code == 200
    breakdown = response.context["breakdown"]
    assert breakdown["points"] == 40 and breakdown["tier"] == "BRONZE"  # 10 + 10% of 300
    html = response.content.decode()
    assert "40 points" in html and "Base v1" in html
    response = client.get(url("ruleset_preview"), {"tier": tiers["GOLD"].pk, "amount": "300"})
    assert response.context["breakdown"]["points"] == 70
    response = client.get(url("ruleset_preview"), {"member": "NOPE", "amount": "300"})
    assert response.context["breakdown"] is None and "No member with customer id" in response.content.decode()
    response = client.get(url("ruleset_preview"), {"amount": "300"})
    assert "Pick a member or a tier" in response.content.decode()
    assert (LedgerEntry.objects.count(), Transaction.objects.count(), MemberTracker.objects.count()) == before


@pytest.mark.django_db
def test_rule_set_changelist_links_the_preview(live_set, support_user):
    html = login(support_user).get(url("ruleset_changelist")).content.decode()
    assert url("ruleset_preview") in html


# --- program settings ------------------------------------------------------------------------


def program_data(**overrides):
    data = {
        "currency": "EUR",
        "qualification_period_months": "12",
        "retro_window_days": "90",
        "retro_max_claims_per_30_days": "5",
        "retro_enrolment_buffer_hours": "24",
        "retro_auto_approve_below_points": "",
        "rollback_window_days": "30",
        "rollback_approval_above_points": "",
        "rollback_approval_reasons": '["fraud"]',
        "rollback_max_per_member_30_days": "3",
        "rollback_partial_allowed": "on",
        "rollback_expired_lot_grace_days": "0",
        "rollback_statuses": '["pending"]',
        "rollback_fulfillment_statuses": '["none"]',
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_program_settings_is_a_singleton_edited_by_admins(admin_user):
    client = login(admin_user)
    response = client.get(url("programsettings_changelist"))
    assert response.status_code == 302 and response["Location"] == url("programsettings_change", 1)
    page = client.get(url("programsettings_change", 1))
    html = page.content.decode()
    assert "Retro claims" in html and "Rollback policy" in html
    assert client.get(url("programsettings_add")).status_code == 403
    response = client.post(url("programsettings_change", 1), program_data(retro_enabled="on", retro_window_days="60"))
    assert response.status_code == 302
    program = ProgramSettings.load()
    assert program.retro_enabled and program.retro_window_days == 60
    record = program.history.first()
    assert record.history_user == admin_user and "retro_enabled" in record.history_change_reason
    assert client.get(url("programsettings_history", 1)).status_code == 200
    assert client.post(url("programsettings_delete", 1)).status_code == 403


@pytest.mark.django_db
def test_program_settings_are_refused_to_support(support_user):
    client = login(support_user)
    assert client.get(url("programsettings_change", ProgramSettings.load().pk)).status_code == 200  # view only
    response = client.post(url("programsettings_change", 1), program_data(retro_enabled="on"))
    assert response.status_code == 403
    assert ProgramSettings.load().retro_enabled is False


@pytest.mark.django_db
def test_program_settings_editable_by_campaign_managers(campaign_manager_user):
    response = login(campaign_manager_user).post(
        url("programsettings_change", ProgramSettings.load().pk), program_data(retro_window_days="45")
    )
    assert response.status_code == 302
    assert ProgramSettings.load().retro_window_days == 45
