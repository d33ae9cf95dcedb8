"""The retro claims admin: claim pages, the approval queue with bulk actions, and the member page flow."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.contrib.admin import helpers
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from loyalty import roles, services
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, PointBalance, ProgramSettings
from retro import services as retro
from retro.models import RetroClaim
from tests.helpers import BY_TIER, admin_url, login, make_user, message_links, messages_of

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")

FIXED = {"name": "Visit", "metric": "points", "action": "fixed", "points": 10}


QUEUE = "/admin/retro/retroclaim/queue/"
CHANGELIST = "/admin/retro/retroclaim/"


def claim_url(claim, suffix="change"):
    return reverse(f"admin:retro_retroclaim_{suffix}", args=[claim.pk])


def member_url(member, query=""):
    return admin_url("loyalty_member_change", member.pk, query=query)


@pytest.fixture
def world(db, metric, tiers, admin_user):
    program = ProgramSettings.load()
    program.retro_enabled = True
    program.save()
    now = timezone.now()
    rule_set = services.create_rule_set(
        name="Base", valid_from=now - dt.timedelta(days=60), rules=[FIXED, BY_TIER], actor=admin_user
    )
    services.publish_rule_set(rule_set=rule_set, actor=admin_user)
    with time_machine.travel(now - dt.timedelta(days=30), tick=False):
        shopper = services.enroll_member(external_id="M-7", email="sam@example.com", name="Sam Shopper", actor=SYSTEM)
    bills = [
        services.record_transaction(
            external_id=f"BILL-{i}",
            occurred_at=now - dt.timedelta(days=i),
            amount=Decimal("100.00") * i,
            currency="EUR",
            store="AMS-1" if i % 2 else "RTM-2",
            actor=SYSTEM,
        )
        for i in range(1, 6)
    ]
    return {"member": shopper, "bills": bills, "now": now}


def file_claims(world, user, count, *, start_minutes_ago=120):
    """Claims on the first ``count`` bills, filed one minute apart, oldest first."""
    claims = []
    for i, txn in enumerate(world["bills"][:count]):
        with time_machine.travel(world["now"] - dt.timedelta(minutes=start_minutes_ago - i), tick=False):
            claims.append(retro.submit_retro_claim(transaction_=txn, member=world["member"], actor=user))
    return claims


# --- pages -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_page_renders(world, admin_user, support_user, approver_user, auditor_user):
    claim = file_claims(world, support_user, 1)[0]
    for user in (admin_user, support_user, approver_user, auditor_user):
        client = login(user)
        for path in (
            CHANGELIST,
            QUEUE,
            claim_url(claim),
            claim_url(claim, "history"),
            CHANGELIST + "?status__exact=failed",
        ):
            assert client.get(path).status_code == 200, (user, path)
    html = login(approver_user).get(claim_url(claim)).content.decode()
    assert "Base v1" in html and "BRONZE" in html and "20 points" in html  # 10 + 10% of 100
    assert 'id="approve-form"' in html and 'id="reject-form"' in html


@pytest.mark.django_db
def test_search_and_filters(world, support_user):
    file_claims(world, support_user, 2)
    client = login(support_user)

    def bills(query):
        return [c.transaction.external_id for c in client.get(CHANGELIST + query).context["cl"].result_list]

    assert bills("?q=BILL-2") == ["BILL-2"]
    assert bills("?q=M-7") == ["BILL-2", "BILL-1"]
    assert bills("?q=BILL") == []
    assert bills("?status__exact=submitted&channel__exact=api") == ["BILL-2", "BILL-1"]
    assert bills("?status__exact=processed") == []


@pytest.mark.django_db
def test_queue_lists_submitted_claims_oldest_first(world, support_user, approver_user):
    claims = file_claims(world, support_user, 4)
    retro.reject_retro_claim(claim=claims[1], actor=approver_user, reason="duplicate")
    response = login(approver_user).get(QUEUE)
    rows = list(response.context["cl"].result_list)
    assert [c.pk for c in rows] == [claims[0].pk, claims[2].pk, claims[3].pk]
    html = response.content.decode()
    assert "Retro claims waiting for approval" in html
    assert "Base v1 · tier BRONZE" in html  # breakdown summary
    assert "Approve selected claims" in html and "Reject selected claims" in html
    assert "Retry selected" not in html


@pytest.mark.django_db
def test_queue_query_count_is_bounded(world, support_user, approver_user):
    file_claims(world, support_user, 5)
    client = login(approver_user)
    client.get(QUEUE)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(QUEUE)
    assert len(response.context["cl"].result_list) == 5
    assert len(ctx.captured_queries) <= 12, [q["sql"] for q in ctx.captured_queries]


# --- bulk actions ----------------------------------------------------------------------------


def action(client, name, claims, path=QUEUE, **extra):
    data = {"action": name, helpers.ACTION_CHECKBOX_NAME: [c.pk for c in claims], "index": "0", **extra}
    return client.post(path, data, follow=True)


@pytest.mark.django_db
def test_bulk_approve_processes_claims_and_reports_four_eyes_failures(
    world, support_user, django_capture_on_commit_callbacks
):
    both = make_user("bea", roles.SUPPORT_AGENT, roles.APPROVER)
    others = file_claims(world, support_user, 2)
    own = file_claims({**world, "bills": world["bills"][2:]}, both, 1, start_minutes_ago=60)[0]
    with django_capture_on_commit_callbacks(execute=True):
        response = action(login(both), "approve_selected", [*others, own])
    assert response.redirect_chain[-1][0] == QUEUE
    msgs = messages_of(response)
    assert any(f"Approved 2 claim(s): #{others[0].pk}, #{others[1].pk}" in m for m in msgs), msgs
    assert any(f"Claim #{own.pk} (bill BILL-3) not approved" in m and "four_eyes_required" in m for m in msgs), msgs
    for claim in others:
        claim.refresh_from_db()
        assert (claim.status, claim.approved_by) == ("processed", both)
    own.refresh_from_db()
    assert own.status == "submitted"
    # 10 + 10 % of 100, then 10 + 10 % of 200
    assert PointBalance.objects.get(member=world["member"]).balance == 20 + 30
    assert [c.pk for c in response.context["cl"].result_list] == [own.pk]  # back on the queue


@pytest.mark.django_db
def test_support_cannot_use_the_approval_actions(world, support_user):
    claim = file_claims(world, support_user, 1)[0]
    html = login(support_user).get(QUEUE).content.decode()
    assert "Approve selected claims" not in html
    action(login(support_user), "approve_selected", [claim])
    claim.refresh_from_db()
    assert claim.status == "submitted"
    assert login(support_user).post(claim_url(claim, "approve")).status_code == 403


@pytest.mark.django_db
def test_bulk_reject_asks_for_a_reason(world, support_user, approver_user):
    claims = file_claims(world, support_user, 2)
    client = login(approver_user)
    page = action(client, "reject_selected", claims)
    assert page.status_code == 200 and 'id="reject-confirm-form"' in page.content.decode()
    assert "BILL-1" in page.content.decode() and "BILL-2" in page.content.decode()
    no_reason = client.post(
        QUEUE,
        {"action": "reject_selected", helpers.ACTION_CHECKBOX_NAME: [c.pk for c in claims], "confirm": "yes"},
    )
    assert no_reason.status_code == 200 and "This field is required" in no_reason.content.decode()
    assert RetroClaim.objects.filter(status="submitted").count() == 2
    response = client.post(
        QUEUE,
        {
            "action": "reject_selected",
            helpers.ACTION_CHECKBOX_NAME: [c.pk for c in claims],
            "confirm": "yes",
            "reason": "Receipt does not match",
        },
        follow=True,
    )
    assert any("Rejected 2 claim(s)" in m for m in messages_of(response))
    for claim in claims:
        claim.refresh_from_db()
        assert (claim.status, claim.rejection_reason, claim.rejected_by) == (
            "rejected",
            "Receipt does not match",
            approver_user,
        )


@pytest.mark.django_db
def test_failed_claim_is_retried(world, support_user, approver_user, admin_user, django_capture_on_commit_callbacks):
    claim = file_claims(world, support_user, 1)[0]
    member = world["member"]
    services.update_member(member=member, actor=admin_user, status="suspended")
    client = login(approver_user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(claim_url(claim, "approve"))
    claim.refresh_from_db()
    assert claim.status == "failed" and "suspended" in claim.error
    page = client.get(claim_url(claim)).content.decode()
    assert "Processing failed" in page and "Retry (approve again)" in page
    services.update_member(member=member, actor=admin_user, status="active")
    with django_capture_on_commit_callbacks(execute=True):
        response = action(client, "retry_selected", [claim], path=CHANGELIST + "?status__exact=failed")
    assert any("Retried 1 claim(s)" in m for m in messages_of(response))
    claim.refresh_from_db()
    assert claim.status == "processed" and claim.points_awarded == 20
    # retrying a processed claim is refused per row
    response = action(client, "retry_selected", [claim], path=CHANGELIST)
    assert any("Only failed claims can be retried" in m for m in messages_of(response))


@pytest.mark.django_db
def test_claim_page_buttons(world, support_user, approver_user, django_capture_on_commit_callbacks):
    first, second = file_claims(world, support_user, 2)
    client = login(approver_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(claim_url(first, "approve"), follow=True)
    assert any(f"Approved claim #{first.pk}" in m for m in messages_of(response))
    first.refresh_from_db()
    assert first.status == "processed"
    assert LedgerEntry.objects.get(pk=first.ledger_entry_id).kind == "retro"
    assert "Processed" in response.content.decode() and 'id="approve-form"' not in response.content.decode()
    response = client.post(claim_url(second, "reject"), {"reason": ""}, follow=True)
    assert any("Not rejected" in m for m in messages_of(response))
    client.post(claim_url(second, "reject"), {"reason": "Not our store"})
    second.refresh_from_db()
    assert (second.status, second.rejection_reason) == ("rejected", "Not our store")
    response = client.post(claim_url(second, "approve"), follow=True)
    assert any("Not approved" in m for m in messages_of(response))


@pytest.mark.django_db
def test_own_claim_page_says_another_approver_must_decide(world):
    both = make_user("bea", roles.SUPPORT_AGENT, roles.APPROVER)
    claim = file_claims(world, both, 1)[0]
    client = login(both)
    html = client.get(claim_url(claim)).content.decode()
    assert "another approver must decide" in html and 'id="approve-form"' not in html
    response = client.post(claim_url(claim, "approve"), follow=True)
    assert any("another approver must approve it" in m for m in messages_of(response))
    claim.refresh_from_db()
    assert claim.status == "submitted"


# --- the member page ------------------------------------------------------------------------


@pytest.mark.django_db
def test_member_page_search_and_claim(world, support_user):
    member = world["member"]
    client = login(support_user)
    page = client.get(member_url(member))
    assert 'id="retro-panel"' in page.content.decode() and 'id="retro-results"' not in page.content.decode()

    page = client.get(member_url(member, "retro-store=AMS-1"))
    html = page.content.decode()
    assert 'data-bill="BILL-1"' in html and 'data-bill="BILL-3"' in html and 'data-bill="BILL-2"' not in html
    day = timezone.localtime(world["bills"][1].occurred_at).date()
    page = client.get(member_url(member, f"retro-date_from={day}&retro-date_to={day}"))
    assert [r["txn"].external_id for r in page.context["extra_panels"][-1]["context"]["results"]] == ["BILL-2"]
    page = client.get(member_url(member, "retro-amount=300&retro-bill=BILL-3"))
    panel = next(p for p in page.context["extra_panels"] if p["key"] == "retro")["context"]
    assert [r["txn"].external_id for r in panel["results"]] == ["BILL-3"]

    txn = world["bills"][2]
    response = client.post(
        reverse("admin:loyalty_member_retro_claim", args=[member.pk]),
        {"transaction": txn.pk, "note": "forgot card", "next": "retro-bill=BILL-3&evil=1"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == member_url(member, "retro-bill=BILL-3") + "#panel-retro"
    claim = RetroClaim.objects.get(transaction=txn)
    assert (claim.status, claim.channel, claim.requested_by, claim.note) == (
        "submitted",
        "admin",
        support_user,
        "forgot card",
    )
    assert claim.preview_points == 40  # 10 + 10 % of 300, BRONZE at the purchase date
    assert any(f"Retro claim #{claim.pk} filed for bill BILL-3: preview 40 points" in m for m in messages_of(response))
    assert message_links(response) == [reverse("admin:retro_retroclaim_change", args=[claim.pk])]
    html = response.content.decode()
    assert f'data-claim="{claim.pk}"' in html and "already claimed" in html
    assert LedgerEntry.objects.filter(member=member).count() == 0  # nothing credited before approval

    again = client.post(
        reverse("admin:loyalty_member_retro_claim", args=[member.pk]), {"transaction": txn.pk}, follow=True
    )
    assert any("No claim filed for bill BILL-3" in m for m in messages_of(again))
    assert RetroClaim.objects.filter(transaction=txn).count() == 1


@pytest.mark.django_db
def test_member_page_claim_refused_when_retro_is_off(world, support_user):
    ProgramSettings.objects.filter(pk=1).update(retro_enabled=False)
    member = world["member"]
    client = login(support_user)
    assert "switched off" in client.get(member_url(member)).content.decode()
    response = client.post(
        reverse("admin:loyalty_member_retro_claim", args=[member.pk]),
        {"transaction": world["bills"][0].pk},
        follow=True,
    )
    assert any("switched off" in m for m in messages_of(response))
    assert not RetroClaim.objects.exists()


@pytest.mark.django_db
def test_member_panel_only_for_users_who_may_file(world, approver_user):
    member = world["member"]
    client = login(approver_user)
    page = client.get(member_url(member, "retro-bill=BILL-1"))
    assert page.status_code == 200 and 'id="retro-panel"' not in page.content.decode()
    response = client.post(
        reverse("admin:loyalty_member_retro_claim", args=[member.pk]), {"transaction": world["bills"][0].pk}
    )
    assert response.status_code == 403
    assert client.get(reverse("admin:loyalty_member_retro_claim", args=[member.pk])).status_code == 405
    assert not RetroClaim.objects.exists()
