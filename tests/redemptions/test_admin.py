"""The redemptions admin, driven through the Django test client: screens, queues, bulk actions
through the services, the member page's Rewards panel, rollbacks and trends."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from loyalty import roles
from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, ProgramSettings
from redemptions import services
from redemptions.models import Redemption, RewardCodePool, Rollback
from tests.helpers import admin_url as url
from tests.helpers import balance, login, make_user, message_links, messages_of

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")

ACTION = "_selected_action"


def ids(response):
    return [r.pk for r in response.context["cl"].result_list]


@pytest.fixture
def lead(db):
    """A team lead: support agent and approver at once (four-eyes still applies)."""
    return make_user("lead", roles.SUPPORT_AGENT, roles.APPROVER)


@pytest.fixture
def data(rich_member, reward, code_reward, support_user, admin_user):
    mug = reward(name="Mug", requires_fulfillment=True, stock=10)
    vip = reward(name="VIP lounge", requires_approval=True, points=50)
    plain = services.redeem_reward(member=rich_member, reward=mug, actor=support_user)
    coded = services.redeem_reward(member=rich_member, reward=code_reward, actor=support_user)
    submitted = services.redeem_reward(member=rich_member, reward=vip, actor=support_user)
    awarded = services.award_reward(member=rich_member, reward=mug, actor=admin_user, reason="Birthday")
    claimed = services.award_reward(member=rich_member, reward=mug, actor=admin_user, reason="Apology")
    services.change_award_status(redemption=claimed, award_status="claimed", actor=admin_user)
    return {
        "member": rich_member,
        "mug": mug,
        "vip": vip,
        "plain": plain,
        "coded": coded,
        "submitted": submitted,
        "awarded": awarded,
        "claimed": claimed,
    }


# --- screens ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize("who", ["admin_user", "support_user", "approver_user", "auditor_user"])
def test_screens_render_for_every_role(data, request, who):
    user = request.getfixturevalue(who)
    rollback = services.rollback_redemption(
        redemption=data["plain"], reason="fraud", actor=make_user("x", roles.SUPPORT_AGENT)
    )
    client = login(user)
    pages = [
        url("redemptions_redemption_changelist"),
        url("redemptions_redemption_queue"),
        url("redemptions_award_changelist"),
        url("redemptions_rollback_changelist"),
        url("redemptions_rollback_queue"),
        url("redemptions_rollback_trends"),
        url("redemptions_redemption_change", data["coded"].pk),
        url("redemptions_award_change", data["awarded"].pk),
        url("redemptions_rollback_change", rollback.pk),
        url("redemptions_redemption_history", data["coded"].pk),
        url("redemptions_rollback_history", rollback.pk),
        url("loyalty_member_change", data["member"].pk),
        url("loyalty_reward_change", data["mug"].pk),
        url("redemptions_rewardcodepool_changelist"),
        url("redemptions_redemption_export"),
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, (page, response.status_code)


@pytest.mark.django_db
def test_change_pages_are_view_only_and_nothing_can_be_added_or_deleted(data, admin_user):
    client = login(admin_user)
    red = data["plain"]
    page = client.get(url("redemptions_redemption_change", red.pk))
    html = page.content.decode()
    assert 'name="_save"' not in html and 'id="response-actions"' in html
    assert client.post(url("redemptions_redemption_change", red.pk), {"status": "canceled"}).status_code == 403
    assert client.get(url("redemptions_redemption_add")).status_code == 403
    assert client.get(url("redemptions_redemption_delete", red.pk)).status_code == 403
    assert client.get(url("redemptions_rollback_add")).status_code == 403
    red.refresh_from_db()
    assert red.status == "pending"


@pytest.mark.django_db
def test_redemptions_screen_shows_claimed_awards_but_not_awarded_ones(data, support_user):
    client = login(support_user)
    listed = ids(client.get(url("redemptions_redemption_changelist")))
    assert data["claimed"].pk in listed and data["awarded"].pk not in listed
    assert {data["plain"].pk, data["coded"].pk, data["submitted"].pk} <= set(listed)
    assert listed == sorted(listed, reverse=True)  # newest first
    awards = ids(client.get(url("redemptions_award_changelist")))
    assert sorted(awards) == sorted([data["claimed"].pk, data["awarded"].pk])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, expected",
    [
        ("kind__exact=award", ["claimed"]),
        ("approval_status__exact=submitted", ["submitted"]),
        ("award_status__exact=claimed", ["claimed"]),
        ("created_within=7", ["plain", "coded", "submitted", "claimed"]),
    ],
)
def test_filters(data, support_user, query, expected):
    response = login(support_user).get(url("redemptions_redemption_changelist", query=query))
    assert sorted(ids(response)) == sorted(data[k].pk for k in expected)


@pytest.mark.django_db
def test_search_by_email_customer_id_code_and_id(data, support_user):
    other = loyalty.enroll_member(external_id="M-2", email="bob@example.com", actor=SYSTEM)
    loyalty.credit_points(member=other, metric=data["mug"].metric, amount=500, actor=SYSTEM)
    bobs = services.redeem_reward(member=other, reward=data["mug"], actor=support_user)
    client = login(support_user)

    def search(term):
        return sorted(ids(client.get(url("redemptions_redemption_changelist"), {"q": term})))

    assert search("bob@example.com") == [bobs.pk]
    assert search("BOB@example.com") == [bobs.pk]  # exact email, as typed or lower-cased
    assert search("M-2") == [bobs.pk]
    code = data["coded"].issued_code.code
    assert search(code.lower()) == [data["coded"].pk]  # the code is normalised
    assert search(f"#{bobs.pk}") == [bobs.pk]
    assert search("example.com") == []  # no partial matches: exact, index-friendly lookups only


@pytest.mark.django_db
def test_changelist_query_count_is_small_and_constant(data, support_user, reward):
    client = login(support_user)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url("redemptions_redemption_changelist")).status_code == 200
        return len(ctx.captured_queries)

    small = count()
    for _ in range(15):
        services.redeem_reward(member=data["member"], reward=reward(points=1), actor=support_user)
    assert count() == small
    assert small <= 15


# --- the approval queue and bulk actions -----------------------------------------------------


@pytest.mark.django_db
def test_queue_lists_submitted_oldest_first_with_balance_and_history_links(data, support_user, approver_user, lead):
    second = services.redeem_reward(member=data["member"], reward=data["vip"], actor=lead)
    response = login(approver_user).get(url("redemptions_redemption_queue"))
    assert ids(response) == [data["submitted"].pk, second.pk]
    html = response.content.decode()
    assert "Approval queue" in html and "oldest first" in html
    assert f"{balance(data['member']):,} points" in html  # the member's balance in the reward's metric
    assert url("loyalty_ledgerentry_changelist", query=f"member__id__exact={data['member'].pk}") in html
    actions = response.context["action_form"].fields["action"].choices
    assert [name for name, _ in actions if name] == ["approve_selected", "reject_selected", "return_selected"]
    # the Redemptions screen links to it prominently with the waiting count
    page = login(approver_user).get(url("redemptions_redemption_changelist")).content.decode()
    assert 'id="approval-queue-link"' in page and "Approval queue (2)" in page


@pytest.mark.django_db
def test_bulk_approve_reports_the_four_eyes_row_and_leaves_it_unchanged(data, lead):
    own = services.redeem_reward(member=data["member"], reward=data["vip"], actor=lead)
    other = data["submitted"]
    response = login(lead).post(
        url("redemptions_redemption_queue"),
        {"action": "approve_selected", ACTION: [own.pk, other.pk], "index": 0},
        follow=True,
    )
    msgs = messages_of(response)
    assert f"Approved 1: #{other.pk}." in msgs
    assert any(m.startswith("1 could not be approved") and f"#{own.pk}: You created this" in m for m in msgs), msgs
    own.refresh_from_db()
    other.refresh_from_db()
    assert (own.approval_status, other.approval_status) == ("submitted", "approved")
    assert other.decided_by == lead
    assert response.redirect_chain[-1][0].endswith(url("redemptions_redemption_queue"))


@pytest.mark.django_db
def test_bulk_reject_asks_for_a_reason_then_rejects_through_the_service(data, approver_user, support_user):
    before = balance(data["member"])
    client = login(approver_user)
    target = data["submitted"]
    payload = {"action": "reject_selected", ACTION: [target.pk, data["plain"].pk], "index": 0}
    page = client.post(url("redemptions_redemption_changelist"), payload)
    assert page.status_code == 200 and b'name="reason"' in page.content and b"2 selected" in page.content
    # no reason: the page again, nothing changed
    again = client.post(url("redemptions_redemption_changelist"), {**payload, "apply": "1", "reason": " "})
    assert again.status_code == 200
    target.refresh_from_db()
    assert target.approval_status == "submitted"
    response = client.post(
        url("redemptions_redemption_changelist"),
        {"action": "reject_selected", ACTION: [target.pk, data["plain"].pk], "apply": "1", "reason": "Duplicate"},
        follow=True,
    )
    msgs = messages_of(response)
    assert f"Rejected 1: #{target.pk}." in msgs
    assert any(f"#{data['plain'].pk}: approval_status cannot move from none to rejected" in m for m in msgs), msgs
    target.refresh_from_db()
    assert (target.approval_status, target.status, target.decision_reason) == ("rejected", "canceled", "Duplicate")
    assert balance(data["member"]) == before + 50
    assert data["plain"].__class__.objects.get(pk=data["plain"].pk).approval_status is None


@pytest.mark.django_db
def test_bulk_return(data, approver_user):
    target = data["submitted"]
    response = login(approver_user).post(
        url("redemptions_redemption_queue"),
        {"action": "return_selected", ACTION: [target.pk], "apply": "1", "reason": "Address missing"},
        follow=True,
    )
    assert f"Returned 1: #{target.pk}." in messages_of(response)
    target.refresh_from_db()
    assert (target.approval_status, target.points_returned) == ("returned", 50)


@pytest.mark.django_db
def test_bulk_change_status_reports_invalid_transitions(data, support_user):
    canceled = services.change_status(redemption=data["coded"], status="canceled", actor=support_user)
    client = login(support_user)
    payload = {"action": "change_status_selected", ACTION: [data["plain"].pk, canceled.pk]}
    page = client.post(url("redemptions_redemption_changelist"), {**payload, "index": 0})
    assert b'name="status"' in page.content
    response = client.post(
        url("redemptions_redemption_changelist"), {**payload, "apply": "1", "status": "processing"}, follow=True
    )
    msgs = messages_of(response)
    assert f"Moved 1: #{data['plain'].pk}." in msgs
    assert any(f"#{canceled.pk}: status cannot move from canceled to processing" in m for m in msgs), msgs
    data["plain"].refresh_from_db()
    canceled.refresh_from_db()
    assert (data["plain"].status, canceled.status) == ("processing", "canceled")
    assert data["plain"].history.first().history_user == support_user


@pytest.mark.django_db
def test_bulk_change_fulfillment_with_tracking_ref(data, support_user):
    mug_redemption = data["plain"]
    code_redemption = data["coded"]  # a discount code is not shipped
    client = login(support_user)
    payload = {"action": "change_fulfillment_selected", ACTION: [mug_redemption.pk, code_redemption.pk], "apply": "1"}
    client.post(url("redemptions_redemption_changelist"), {**payload, "fulfillment_status": "confirmed_paid"})
    response = client.post(
        url("redemptions_redemption_changelist"),
        {**payload, "fulfillment_status": "shipped", "tracking_ref": "TRK-1"},
        follow=True,
    )
    msgs = messages_of(response)
    assert f"Moved 1: #{mug_redemption.pk}." in msgs
    assert any(f"#{code_redemption.pk}:" in m and "not fulfilled by shipping" in m for m in msgs), msgs
    mug_redemption.refresh_from_db()
    code_redemption.refresh_from_db()
    assert (mug_redemption.fulfillment_status, mug_redemption.tracking_ref) == ("shipped", "TRK-1")
    assert code_redemption.fulfillment_status is None


@pytest.mark.django_db
def test_award_status_action_claims_an_award(data, support_user):
    award = data["awarded"]
    response = login(support_user).post(
        url("redemptions_award_changelist"),
        {"action": "change_award_status_selected", ACTION: [award.pk], "apply": "1", "award_status": "claimed"},
        follow=True,
    )
    assert f"Moved 1: #{award.pk}." in messages_of(response)
    award.refresh_from_db()
    assert award.award_status == "claimed"


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["auditor_user", "support_user"])
def test_actions_need_their_permission(data, request, who):
    user = request.getfixturevalue(who)
    target = data["submitted"]
    response = login(user).post(
        url("redemptions_redemption_changelist"), {"action": "approve_selected", ACTION: [target.pk], "index": 0}
    )
    assert response.status_code in (200, 302)
    target.refresh_from_db()
    assert target.approval_status == "submitted"


@pytest.mark.django_db
def test_change_page_buttons_follow_state_and_permissions(data, approver_user, support_user, auditor_user):
    submitted = url("redemptions_redemption_change", data["submitted"].pk)
    html = login(approver_user).get(submitted).content.decode()
    assert 'id="do-approve_selected"' in html and 'id="do-reject_selected"' in html
    assert 'id="do-rollback_selected"' not in html
    html = login(support_user).get(submitted).content.decode()
    # waiting for approval nothing but the decision moves: no Roll back (the policy would refuse it)
    assert 'id="do-approve_selected"' not in html and 'id="do-rollback_selected"' not in html
    html = login(support_user).get(url("redemptions_redemption_change", data["plain"].pk)).content.decode()
    assert 'id="do-rollback_selected"' in html
    html = login(auditor_user).get(submitted).content.decode()
    assert 'id="do-' not in html
    # a button posts through the action and comes back to the page
    response = login(approver_user).post(
        url("redemptions_redemption_changelist"),
        {"action": "approve_selected", ACTION: [data["submitted"].pk], "index": 0, "next": submitted},
    )
    assert response.status_code == 302 and response["Location"] == submitted


@pytest.mark.django_db
def test_roll_back_is_hidden_where_the_policy_always_refuses(data, support_user):
    """A delivered redemption cannot be rolled back (rollback_fulfillment_statuses): no button, and
    the action itself still refuses it with the reason."""
    red = data["plain"]
    page = url("redemptions_redemption_change", red.pk)
    assert 'id="do-rollback_selected"' in login(support_user).get(page).content.decode()
    red.__class__.objects.filter(pk=red.pk).update(fulfillment_status="delivered")
    html = login(support_user).get(page).content.decode()
    assert 'id="do-rollback_selected"' not in html
    response = login(support_user).post(
        url("redemptions_redemption_changelist"),
        {"action": "rollback_selected", ACTION: [red.pk], "apply": "1", "reason": "other", "points": "", "note": ""},
        follow=True,
    )
    assert any("1 could not be rolled back" in m and "delivered" in m for m in messages_of(response))
    red.refresh_from_db()
    assert red.points_returned == 0


# --- member page -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_member_page_shows_rewards_panel_and_redeem_form(data, support_user):
    response = login(support_user).get(url("loyalty_member_change", data["member"].pk))
    html = response.content.decode()
    assert 'id="member-rewards"' in html and 'id="redeem-reward-form"' in html and 'id="member-rollbacks"' in html
    assert 'id="award-reward-form"' in html  # support agents may award
    assert "Mug — 100 points, 7 in stock" in html  # the reward's cost in the select
    assert f'class="redeem-balance" data-metric="points">{balance(data["member"])}<' in html
    panel = next(p for p in response.context["extra_panels"] if p["key"] == "rewards")
    assert [r.pk for r in panel["context"]["responses"]][:2] == [data["claimed"].pk, data["awarded"].pk]
    assert url("redemptions_redemption_changelist", query=f"member__id__exact={data['member'].pk}") in html


@pytest.mark.django_db
def test_redeem_from_member_page_creates_a_redemption_through_the_service(data, support_user):
    member = data["member"]
    before = balance(member)
    response = login(support_user).post(
        url("loyalty_member_redeem_reward", member.pk),
        {"redeem-reward": data["mug"].pk, "redeem-quantity": "2"},
        follow=True,
    )
    red = Redemption.objects.order_by("-pk").first()
    assert (red.member, red.reward, red.quantity, red.points_spent) == (member, data["mug"], 2, 200)
    assert (red.channel, red.created_by) == ("admin", support_user)
    assert any(f"Redeemed #{red.pk}: 2 × Mug for 200 points" in m for m in messages_of(response))
    assert message_links(response) == [url("redemptions_redemption_change", red.pk)]  # the message links to it
    assert balance(member) == before - 200
    assert response.redirect_chain[-1][0].startswith(url("loyalty_member_change", member.pk))


@pytest.mark.django_db
def test_redeem_refuses_insufficient_points_and_writes_nothing(data, support_user, reward):
    expensive = reward(name="Bike", points=100_000, stock=1)
    member = data["member"]
    before = (balance(member), Redemption.objects.count(), LedgerEntry.objects.count())
    response = login(support_user).post(
        url("loyalty_member_redeem_reward", member.pk),
        {"redeem-reward": expensive.pk, "redeem-quantity": "1"},
        follow=True,
    )
    msgs = messages_of(response)
    assert any(m.startswith("Not redeemed.") and "100000 are needed" in m for m in msgs), msgs
    assert (balance(member), Redemption.objects.count(), LedgerEntry.objects.count()) == before
    expensive.refresh_from_db()
    assert expensive.stock == 1
    # bad input is refused the same way
    response = login(support_user).post(
        url("loyalty_member_redeem_reward", member.pk), {"redeem-reward": "", "redeem-quantity": "0"}, follow=True
    )
    assert any(m.startswith("Not redeemed.") for m in messages_of(response))
    assert Redemption.objects.count() == before[1]


@pytest.mark.django_db
def test_redeem_and_award_need_permission_post_and_csrf(data, approver_user, support_user):
    member = data["member"]
    before = Redemption.objects.count()
    client = login(approver_user)
    html = client.get(url("loyalty_member_change", member.pk)).content.decode()
    assert 'id="redeem-reward-form"' not in html and 'id="member-rewards"' in html
    payload = {"redeem-reward": data["mug"].pk, "redeem-quantity": "1"}
    assert client.post(url("loyalty_member_redeem_reward", member.pk), payload).status_code == 403
    assert (
        client.post(url("loyalty_member_award_reward", member.pk), {"award-reward": data["mug"].pk}).status_code == 403
    )
    assert login(support_user).get(url("loyalty_member_redeem_reward", member.pk)).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(support_user)
    assert strict.post(url("loyalty_member_redeem_reward", member.pk), payload).status_code == 403
    assert Redemption.objects.count() == before


@pytest.mark.django_db
def test_award_from_member_page(data, support_user):
    member = data["member"]
    before = balance(member)
    response = login(support_user).post(
        url("loyalty_member_award_reward", member.pk),
        {"award-reward": data["mug"].pk, "award-reason": "Late parcel"},
        follow=True,
    )
    award = Redemption.objects.order_by("-pk").first()
    assert (award.kind, award.award_status, award.reason, award.points_spent) == ("award", "awarded", "Late parcel", 0)
    assert any(m.startswith(f"Awarded #{award.pk}: 1 × Mug") for m in messages_of(response))
    assert message_links(response) == [url("redemptions_award_change", award.pk)]  # on the Awards screen
    assert login(support_user).get(message_links(response)[0]).status_code == 200
    assert balance(member) == before


# --- rollbacks -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_rollback_action_full_and_partial(data, support_user, reward):
    member = data["member"]
    first = services.redeem_reward(member=member, reward=reward(points=300), actor=support_user)
    second = services.redeem_reward(member=member, reward=reward(points=200), actor=support_user)
    before = balance(member)
    client = login(support_user)
    page = client.post(
        url("redemptions_redemption_changelist"), {"action": "rollback_selected", ACTION: [first.pk], "index": 0}
    )
    assert page.status_code == 200 and b'name="points"' in page.content and b"customer_request" in page.content
    response = client.post(
        url("redemptions_redemption_changelist"),
        {
            "action": "rollback_selected",
            ACTION: [first.pk],
            "apply": "1",
            "reason": "customer_request",
            "note": "Asked",
        },
        follow=True,
    )
    assert f"Rolled back (points and stock returned, the member told): 1 redemption: #{first.pk}." in messages_of(
        response
    )
    first.refresh_from_db()
    assert (first.status, first.points_returned) == ("canceled", 300)
    response = client.post(
        url("redemptions_redemption_changelist"),
        {"action": "rollback_selected", ACTION: [second.pk], "apply": "1", "reason": "technical_error", "points": "50"},
        follow=True,
    )
    second.refresh_from_db()
    assert (second.status, second.points_returned) == ("pending", 50)
    [partial] = Rollback.objects.filter(redemption=second)
    assert (partial.full, partial.points_returned, partial.status, partial.requested_by) == (
        False,
        50,
        "executed",
        support_user,
    )
    assert balance(member) == before + 350
    # more than is left is refused per row, nothing written
    response = client.post(
        url("redemptions_redemption_changelist"),
        {"action": "rollback_selected", ACTION: [second.pk], "apply": "1", "reason": "other", "points": "500"},
        follow=True,
    )
    assert any(f"#{second.pk}: Only 150 of the 200 points" in m for m in messages_of(response)), messages_of(response)
    assert Rollback.objects.filter(redemption=second).count() == 1


@pytest.mark.django_db
def test_rollback_queue_second_person_approves_requester_is_refused(data, support_user, approver_user, lead):
    member = data["member"]
    before = balance(member)
    fraud = services.rollback_redemption(redemption=data["plain"], reason="fraud", actor=lead)
    other = services.rollback_redemption(redemption=data["coded"], reason="fraud", actor=support_user)
    assert fraud.status == other.status == "pending_approval"
    client = login(lead)
    queue = client.get(url("redemptions_rollback_queue"))
    assert ids(queue) == [fraud.pk, other.pk]
    response = client.post(
        url("redemptions_rollback_queue"),
        {"action": "approve_rollbacks", ACTION: [fraud.pk, other.pk], "apply": "1", "reason": "ok"},
        follow=True,
    )
    msgs = messages_of(response)
    assert f"Approved 1: #{other.pk}." in msgs
    assert any(f"#{fraud.pk}: You requested this rollback" in m for m in msgs), msgs
    fraud.refresh_from_db()
    assert fraud.status == "pending_approval"
    # a second person approves it
    login(approver_user).post(
        url("redemptions_rollback_queue"),
        {"action": "approve_rollbacks", ACTION: [fraud.pk], "apply": "1", "reason": ""},
    )
    fraud.refresh_from_db()
    assert (fraud.status, fraud.approved_by) == ("executed", approver_user)
    assert balance(member) == before + 100 + data["coded"].points_spent
    assert ids(login(approver_user).get(url("redemptions_rollback_queue"))) == []


@pytest.mark.django_db
def test_a_rollback_that_waits_for_a_second_person_says_so_and_is_in_recent_actions(data, support_user):
    from django.contrib.admin.models import LogEntry

    response = login(support_user).post(
        url("redemptions_redemption_changelist"),
        {"action": "rollback_selected", ACTION: [data["plain"].pk], "apply": "1", "reason": "fraud", "note": ""},
        follow=True,
    )
    msgs = messages_of(response)
    assert (
        "Sent for approval (a second person must approve the rollback before anything comes back): "
        f"1 redemption: #{data['plain'].pk}." in msgs
    ), msgs
    entry = LogEntry.objects.get(user=support_user, object_id=str(data["plain"].pk))
    assert entry.change_message.startswith("Sent for approval") and entry.is_change()
    # Django's own "Recent actions" on the admin index lists it.
    assert (
        f"/admin/redemptions/redemption/{data['plain'].pk}/change/"
        in login(support_user).get("/admin/").content.decode()
    )


@pytest.mark.django_db
def test_rollback_reject_needs_a_reason(data, support_user, approver_user):
    pending = services.rollback_redemption(redemption=data["plain"], reason="fraud", actor=support_user)
    client = login(approver_user)
    page = client.post(
        url("redemptions_rollback_changelist"), {"action": "reject_rollbacks", ACTION: [pending.pk], "index": 0}
    )
    assert b'name="reason"' in page.content
    response = client.post(
        url("redemptions_rollback_changelist"),
        {"action": "reject_rollbacks", ACTION: [pending.pk], "apply": "1", "reason": "Looks genuine"},
        follow=True,
    )
    assert f"Rejected 1: #{pending.pk}." in messages_of(response)
    pending.refresh_from_db()
    assert (pending.status, pending.decision_note, pending.rejected_by) == ("rejected", "Looks genuine", approver_user)


@pytest.mark.django_db
def test_rollbacks_screen_search_and_member_panel(data, support_user):
    rb = services.rollback_redemption(redemption=data["plain"], reason="customer_request", actor=support_user)
    client = login(support_user)
    assert ids(client.get(url("redemptions_rollback_changelist"), {"q": "M-1"})) == [rb.pk]
    assert ids(client.get(url("redemptions_rollback_changelist"), {"q": "nobody"})) == []
    assert ids(client.get(url("redemptions_rollback_changelist"), {"q": f"r{data['plain'].pk}"})) == [rb.pk]
    assert ids(client.get(url("redemptions_rollback_changelist", query="reason__exact=fraud"))) == []
    html = client.get(url("loyalty_member_change", data["member"].pk)).content.decode()
    assert f'data-rollback="{rb.pk}"' in html
    red_page = client.get(url("redemptions_redemption_change", data["plain"].pk)).content.decode()
    assert "Customer request" in red_page  # the rollbacks inline


@pytest.mark.django_db
def test_trends_page_counts_by_reason_week_staff_and_repeated_members(data, support_user, reward):
    policy = ProgramSettings.load()
    policy.rollback_max_per_member_30_days = 2
    policy.save()
    member = data["member"]
    for reason in ["customer_request", "customer_request", "technical_error"]:
        red = services.redeem_reward(member=member, reward=reward(points=10), actor=support_user)
        services.rollback_redemption(redemption=red, reason=reason, actor=support_user)
    response = login(support_user).get(url("redemptions_rollback_trends"))
    trends = response.context["trends"]
    assert len(trends.weeks) == 12
    this_week = trends.weeks[-1]
    assert this_week.by_reason["customer_request"] == 2 and this_week.by_reason["technical_error"] == 1
    assert this_week.total == 3
    assert [(s.username, s.total) for s in trends.by_staff] == [("sally", 3)]
    assert [(m.external_id, m.count) for m in trends.repeated] == [("M-1", 3)]
    html = response.content.decode()
    assert f'data-week="{this_week.week}"' in html and 'data-member="M-1"' in html and 'data-user="sally"' in html


# --- reward page and code pools --------------------------------------------------------------


@pytest.mark.django_db
def test_reward_page_has_responses_and_code_pool(data, admin_user, campaign_manager_user):
    response = login(admin_user).get(url("loyalty_reward_change", data["mug"].pk))
    html = response.content.decode()
    assert 'id="reward-responses"' in html
    assert [r.pk for r in response.context["responses"]] == [data["claimed"].pk, data["awarded"].pk, data["plain"].pk]
    assert url("redemptions_redemption_changelist", query=f"reward__id__exact={data['mug'].pk}") in html
    filtered = login(admin_user).get(
        url("redemptions_redemption_changelist", query=f"reward__id__exact={data['mug'].pk}")
    )
    assert sorted(ids(filtered)) == sorted([data["plain"].pk, data["claimed"].pk])
    page = login(campaign_manager_user).get(url("loyalty_reward_change", data["coded"].reward_id))
    assert page.status_code == 200 and b"code pool" in page.content.lower()
    pool = RewardCodePool.objects.get(reward=data["coded"].reward)
    assert login(campaign_manager_user).get(url("redemptions_rewardcodepool_change", pool.pk)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("start,target", [(s, t) for s in Redemption.Status.values for t in Redemption.Status.values])
def test_every_status_transition_through_the_admin_follows_the_table(data, support_user, start, target):
    red = data["plain"]
    Redemption.objects.filter(pk=red.pk).update(status=start)
    before = LedgerEntry.objects.count()
    login(support_user).post(
        url("redemptions_redemption_changelist"),
        {"action": "change_status_selected", ACTION: [red.pk], "apply": "1", "status": target},
    )
    red.refresh_from_db()
    if target in Redemption.STATUS_TRANSITIONS[start]:
        assert red.status == target
    else:
        assert red.status == start and LedgerEntry.objects.count() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "start,target",
    [(s, t) for s in [None, *Redemption.Fulfillment.values] for t in Redemption.Fulfillment.values],
)
def test_every_fulfillment_transition_through_the_admin_follows_the_table(data, support_user, start, target):
    red = data["plain"]
    Redemption.objects.filter(pk=red.pk).update(fulfillment_status=start)
    login(support_user).post(
        url("redemptions_redemption_changelist"),
        {"action": "change_fulfillment_selected", ACTION: [red.pk], "apply": "1", "fulfillment_status": target},
    )
    red.refresh_from_db()
    expected = target if target in Redemption.FULFILLMENT_TRANSITIONS[start] else start
    assert red.fulfillment_status == expected


@pytest.mark.django_db
def test_bulk_cancel_goes_through_the_rollback_gate_row_by_row(data, support_user, admin_user, reward):
    """The admin's bulk status action reaches points only through the gate: a used code or a cancel
    that needs a second person is refused for that row with the reason; the others are canceled."""
    from promotions import services as promotions

    member = data["member"]
    loyalty.credit_points(member=member, metric=reward().metric, amount=1000, reason="top up", actor=SYSTEM)
    policy = ProgramSettings.load()
    policy.rollback_approval_above_points = 300
    policy.save()
    coded = data["coded"]
    promotions.redeem_codes(
        promotions.clean_request(codes=[coded.issued_code.code], member=member, order={"amount": "50"}),
        actor=admin_user,
    )
    big = services.redeem_reward(member=member, reward=reward(points=400), actor=support_user)
    plain = data["plain"]
    before = balance(member)
    response = login(support_user).post(
        url("redemptions_redemption_changelist"),
        {"action": "change_status_selected", ACTION: [plain.pk, coded.pk, big.pk], "apply": "1", "status": "canceled"},
        follow=True,
    )
    msgs = messages_of(response)
    assert f"Moved 1: #{plain.pk}." in msgs, msgs
    assert any(f"#{coded.pk}: The issued code" in m and "was used" in m for m in msgs), msgs
    assert any(f"#{big.pk}: Giving back 400 points needs a second person" in m for m in msgs), msgs
    for red in (plain, coded, big):
        red.refresh_from_db()
    assert (plain.status, coded.status, big.status) == ("canceled", "pending", "pending")
    assert balance(member) == before + 100
    [rollback] = Rollback.objects.filter(redemption=plain)
    assert (rollback.via, rollback.requested_by, rollback.status) == ("cancel", support_user, "executed")
