"""The v1 API for redemptions and awards: spending points, refusals that write nothing, approvals with
four-eyes, every lifecycle transition (allowed and refused), idempotency, lists and the schema."""

import datetime as dt
import itertools

import pytest
from django.urls import reverse

from loyalty import roles
from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, PointBalance, Reward
from loyalty.selectors import verify_ledger
from promotions.models import Code
from redemptions.models import Redemption, Rollback
from tests.helpers import BASE, api_client_for, assert_error, balance, make_user


@pytest.fixture
def writes(db):
    """Everything a refused request could touch (counts and the rows that move)."""

    def snapshot():
        return (
            Redemption.objects.count(),
            Redemption.history.count(),
            list(
                Redemption.objects.order_by("pk").values_list(
                    "status", "award_status", "approval_status", "fulfillment_status", "points_returned", "tracking_ref"
                )
            ),
            LedgerEntry.objects.count(),
            list(PointBalance.objects.order_by("pk").values_list("balance", "pending", "debt")),
            list(Reward.objects.order_by("pk").values_list("stock", flat=True)),
            list(Code.objects.order_by("pk").values_list("status", "assigned_member", "uses")),
            Rollback.objects.count(),
        )

    return snapshot


@pytest.fixture
def approver_api(approver_user):
    return api_client_for(approver_user)


def redeem(api, member, reward, **extra):
    return api.post(
        f"{BASE}/redemptions/", {"member": member.external_id, "reward": reward.external_id, **extra}, format="json"
    )


# --- redeem and award ------------------------------------------------------------------------


@pytest.mark.django_db
def test_redeem_spends_points_atomically_and_answers_the_documented_shape(api, rich_member, reward):
    r = reward(stock=5, valid_days=30)
    resp = redeem(api, rich_member, r, quantity=2)
    assert resp.status_code == 201, resp.content
    body = resp.json()
    for field in [
        "id",
        "kind",
        "member",
        "reward",
        "quantity",
        "status",
        "approval_status",
        "fulfillment_status",
        "award_status",
        "points_spent",
        "points_returned",
        "metric",
        "issued_code",
        "tracking_ref",
        "expires_at",
        "created_at",
    ]:
        assert field in body, field
    assert (body["kind"], body["member"], body["reward"], body["quantity"]) == ("redemption", "M-1", r.external_id, 2)
    assert (body["status"], body["approval_status"], body["fulfillment_status"], body["award_status"]) == (
        "pending",
        None,
        None,
        None,
    )
    assert (body["points_spent"], body["points_returned"], body["metric"], body["issued_code"]) == (
        200,
        0,
        "points",
        None,
    )
    assert body["expires_at"] and body["created_at"].endswith(("+00:00", "Z"))
    red = Redemption.objects.get(pk=body["id"])
    assert red.channel == "api" and red.ledger_entry.amount == -200
    assert balance(rich_member) == 800 and Reward.objects.get(pk=r.pk).stock == 3
    assert api.get(f"{BASE}/redemptions/{red.pk}/").json() == body
    assert verify_ledger().ok


@pytest.mark.django_db
def test_discount_code_redemption_shows_the_issued_code(api, rich_member, code_reward):
    body = redeem(api, rich_member, code_reward).json()
    code = Code.objects.get(code=body["issued_code"])
    assert code.assigned_member == rich_member


@pytest.mark.django_db
def test_refusals_carry_their_codes_and_write_nothing(api, rich_member, reward, tiers, writes):
    gold_only = reward()
    gold_only.eligible_tiers.set([tiers["GOLD"]])
    ok, dear, gone = reward(stock=1), reward(points=5000), reward(stock=0)
    url = f"{BASE}/redemptions/"
    cases = [
        (lambda: redeem(api, rich_member, dear), 409, "insufficient_points", None),
        (lambda: redeem(api, rich_member, gone), 409, "out_of_stock", None),
        (lambda: redeem(api, rich_member, gold_only), 422, "not_eligible", None),
        (lambda: redeem(api, rich_member, ok, quantity=0), 400, "invalid", "quantity"),
        (lambda: redeem(api, rich_member, ok, quantity=10**9), 400, "invalid", "quantity"),
        (lambda: redeem(api, rich_member, ok, quantity="two"), 400, "invalid", "quantity"),
        (lambda: api.post(url, {"member": "NOPE", "reward": ok.external_id}, format="json"), 400, "invalid", "member"),
        (lambda: api.post(url, {"member": "M-1", "reward": "NOPE"}, format="json"), 400, "invalid", "reward"),
        (lambda: api.post(url, {"member": "M-1"}, format="json"), 400, "invalid", "reward"),
        (lambda: api.post(url, "{not json", content_type="application/json"), 400, "malformed_request", None),
        (lambda: api.post(url, "[1, 2]", content_type="application/json"), 400, "invalid", None),
    ]
    before = writes()
    for send, status, code, field in cases:
        assert_error(send(), status, code, field)
        assert writes() == before, code
    # with an Idempotency-Key too: a refusal moves nothing (only the stored answer is kept)
    resp = api.post(url, {"member": "M-1", "reward": dear.external_id}, format="json", HTTP_IDEMPOTENCY_KEY="k-9")
    assert_error(resp, 409, "insufficient_points")
    assert writes() == before
    assert not Redemption.objects.exists() and balance(rich_member) == 1000


@pytest.mark.django_db
def test_unknown_redemption_is_404_everywhere(api, approver_api, db):
    assert_error(api.get(f"{BASE}/redemptions/999/"), 404, "not_found")
    for action, body in [("status", {"status": "completed"}), ("fulfillment", {"fulfillment_status": "shipped"})]:
        assert_error(api.post(f"{BASE}/redemptions/999/{action}", body, format="json"), 404, "not_found")
    assert_error(approver_api.post(f"{BASE}/redemptions/999/approve", {}, format="json"), 404, "not_found")
    assert_error(api.post(f"{BASE}/redemptions/999/rollback", {"reason": "other"}, format="json"), 404, "not_found")


@pytest.mark.django_db
def test_award_is_free_with_a_reason(api, member, metric, reward, writes):
    r = reward(points=300, stock=2)
    before = writes()
    assert_error(
        api.post(f"{BASE}/awards/", {"member": "M-1", "reward": r.external_id}, format="json"), 400, "invalid", "reason"
    )
    assert_error(
        api.post(f"{BASE}/awards/", {"member": "M-1", "reward": r.external_id, "reason": " "}, format="json"),
        400,
        "invalid",
        "reason",
    )
    assert writes() == before
    resp = api.post(f"{BASE}/awards/", {"member": "M-1", "reward": r.external_id, "reason": "birthday"}, format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert (body["kind"], body["points_spent"], body["award_status"], body["reason"], body["status"]) == (
        "award",
        0,
        "awarded",
        "birthday",
        "pending",
    )
    assert not LedgerEntry.objects.filter(member=member).exists()  # the member had no points and paid none
    assert Reward.objects.get(pk=r.pk).stock == 1
    assert api.get(f"{BASE}/redemptions/", {"kind": "award"}).json()["count"] == 1


@pytest.mark.django_db
def test_redeem_and_award_need_their_permissions(rich_member, reward, auditor_user, approver_user, writes):
    r = reward()
    auditor = api_client_for(auditor_user)
    before = writes()
    assert_error(redeem(auditor, rich_member, r), 403, "permission_denied")
    assert_error(
        api_client_for(approver_user).post(
            f"{BASE}/awards/", {"member": "M-1", "reward": r.external_id, "reason": "x"}, format="json"
        ),
        403,
        "permission_denied",
    )
    assert writes() == before
    assert auditor.get(f"{BASE}/redemptions/").status_code == 200
    assert_error(api_client_for(make_user("nobody")).get(f"{BASE}/redemptions/"), 403, "permission_denied")


@pytest.mark.django_db
def test_idempotency_key_redeems_once(api, rich_member, reward):
    r = reward(stock=10)
    headers = {"HTTP_IDEMPOTENCY_KEY": "checkout-42"}
    body = {"member": "M-1", "reward": r.external_id, "quantity": 2}
    first = api.post(f"{BASE}/redemptions/", body, format="json", **headers)
    again = api.post(f"{BASE}/redemptions/", body, format="json", **headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Redemption.objects.count() == 1 and balance(rich_member) == 800 and Reward.objects.get(pk=r.pk).stock == 8
    assert_error(
        api.post(f"{BASE}/redemptions/", {**body, "quantity": 1}, format="json", **headers),
        422,
        "idempotency_key_reused",
    )
    assert Redemption.objects.count() == 1 and balance(rich_member) == 800


# --- approval: approve, reject, return, four-eyes ---------------------------------------------


@pytest.mark.django_db
def test_approve_reject_return_through_the_api(api, approver_api, rich_member, reward, writes):
    r = reward(requires_approval=True, stock=5)
    ids = [redeem(api, rich_member, r).json()["id"] for _ in range(3)]
    assert balance(rich_member) == 700
    queue = api.get(f"{BASE}/redemptions/", {"approval_status": "submitted"}).json()
    assert queue["count"] == 3
    # the integration user may redeem but not decide
    before = writes()
    assert_error(api.post(f"{BASE}/redemptions/{ids[0]}/approve", {}, format="json"), 403, "permission_denied")
    assert_error(approver_api.post(f"{BASE}/redemptions/{ids[1]}/reject", {}, format="json"), 400, "invalid", "reason")
    assert writes() == before

    resp = approver_api.post(f"{BASE}/redemptions/{ids[0]}/approve", {"reason": "ok"}, format="json")
    assert resp.status_code == 200 and resp.json()["approval_status"] == "approved"
    assert resp.json()["decided_by"] == "alex"
    before = writes()
    assert_error(
        approver_api.post(f"{BASE}/redemptions/{ids[0]}/approve", {}, format="json"), 409, "invalid_transition"
    )
    assert writes() == before

    resp = approver_api.post(f"{BASE}/redemptions/{ids[1]}/return", {"reason": "changed mind"}, format="json")
    assert (resp.json()["approval_status"], resp.json()["status"], resp.json()["points_returned"]) == (
        "returned",
        "canceled",
        100,
    )
    assert balance(rich_member) == 800

    resp = approver_api.post(f"{BASE}/redemptions/{ids[2]}/reject", {"reason": "not for you"}, format="json")
    assert (resp.json()["approval_status"], resp.json()["status"], resp.json()["decision_reason"]) == (
        "rejected",
        "canceled",
        "not for you",
    )
    assert balance(rich_member) == 900 and Reward.objects.get(pk=r.pk).stock == 4
    # rejected: never again; returned alone would have allowed it
    before = writes()
    assert_error(redeem(api, rich_member, r), 422, "not_eligible")
    assert writes() == before
    assert verify_ledger().ok


@pytest.mark.django_db
def test_returned_reward_may_be_redeemed_again(api, approver_api, rich_member, reward):
    r = reward(requires_approval=True)
    first = redeem(api, rich_member, r).json()["id"]
    approver_api.post(f"{BASE}/redemptions/{first}/return", {"reason": "wrong size"}, format="json")
    assert redeem(api, rich_member, r).status_code == 201


@pytest.mark.django_db
def test_four_eyes_an_approver_never_approves_their_own(rich_member, reward, approver_api, writes):
    lead = api_client_for(make_user("lead", roles.SUPPORT_AGENT, roles.APPROVER))
    r = reward(requires_approval=True)
    own = redeem(lead, rich_member, r).json()["id"]
    before = writes()
    for action, body in [("approve", {}), ("reject", {"reason": "x"}), ("return", {"reason": "x"})]:
        assert_error(lead.post(f"{BASE}/redemptions/{own}/{action}", body, format="json"), 422, "four_eyes_required")
    assert writes() == before
    resp = approver_api.post(f"{BASE}/redemptions/{own}/approve", {}, format="json")
    assert resp.status_code == 200 and resp.json()["approval_status"] == "approved"


@pytest.mark.django_db
def test_award_needing_approval_is_awarded_on_approval(api, approver_api, member, metric, reward):
    r = reward(requires_approval=True)
    body = api.post(
        f"{BASE}/awards/", {"member": "M-1", "reward": r.external_id, "reason": "VIP"}, format="json"
    ).json()
    assert (body["award_status"], body["approval_status"]) == ("pending", "submitted")
    body = approver_api.post(f"{BASE}/redemptions/{body['id']}/approve", {}, format="json").json()
    assert (body["award_status"], body["approval_status"]) == ("awarded", "approved")


# --- every transition of the three lifecycles --------------------------------------------------

STATUSES = list(Redemption.Status.values)
STATUS_PAIRS = list(itertools.product(STATUSES, STATUSES))


def _row(pk):
    return (Redemption.objects.filter(pk=pk).values().get(), Redemption.history.filter(id=pk).count())


@pytest.mark.django_db
@pytest.mark.parametrize(("start", "target"), STATUS_PAIRS, ids=[f"{a}->{b}" for a, b in STATUS_PAIRS])
def test_status_transitions(api, rich_member, reward, writes, start, target):
    r = reward(stock=3)
    pk = redeem(api, rich_member, r).json()["id"]
    Redemption.objects.filter(pk=pk).update(status=start)
    before, row = writes(), _row(pk)
    resp = api.post(f"{BASE}/redemptions/{pk}/status", {"status": target, "reason": "ops"}, format="json")
    if target in Redemption.STATUS_TRANSITIONS[start]:
        assert resp.status_code == 200, resp.content
        assert resp.json()["status"] == target
        if target == "canceled":
            assert resp.json()["points_returned"] == 100 and balance(rich_member) == 1000
            assert Reward.objects.get(pk=r.pk).stock == 3
        assert verify_ledger().ok
    else:
        assert_error(resp, 409, "invalid_transition", "status")
        assert writes() == before and _row(pk) == row


FULFILLMENTS = [None, *Redemption.Fulfillment.values]
FULFILLMENT_PAIRS = list(itertools.product(FULFILLMENTS, Redemption.Fulfillment.values))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("start", "target"), FULFILLMENT_PAIRS, ids=[f"{a or 'none'}->{b}" for a, b in FULFILLMENT_PAIRS]
)
def test_fulfillment_transitions(api, rich_member, reward, writes, start, target):
    pk = redeem(api, rich_member, reward(requires_fulfillment=True)).json()["id"]
    Redemption.objects.filter(pk=pk).update(fulfillment_status=start)
    before, row = writes(), _row(pk)
    resp = api.post(
        f"{BASE}/redemptions/{pk}/fulfillment",
        {"fulfillment_status": target, "tracking_ref": "TRK-1"},
        format="json",
    )
    if target in Redemption.FULFILLMENT_TRANSITIONS[start]:
        assert resp.status_code == 200, resp.content
        assert (resp.json()["fulfillment_status"], resp.json()["tracking_ref"]) == (target, "TRK-1")
    else:
        assert_error(resp, 409, "invalid_transition", "fulfillment_status")
        assert writes() == before and _row(pk) == row


AWARD_STATUSES = list(Redemption.AwardStatus.values)
AWARD_PAIRS = list(itertools.product(AWARD_STATUSES, AWARD_STATUSES))


@pytest.mark.django_db
@pytest.mark.parametrize(("start", "target"), AWARD_PAIRS, ids=[f"{a}->{b}" for a, b in AWARD_PAIRS])
def test_award_status_transitions(api, member, metric, reward, writes, start, target):
    r = reward(stock=3)
    pk = api.post(
        f"{BASE}/awards/", {"member": "M-1", "reward": r.external_id, "reason": "promo"}, format="json"
    ).json()["id"]
    Redemption.objects.filter(pk=pk).update(award_status=start)
    before, row = writes(), _row(pk)
    resp = api.post(f"{BASE}/redemptions/{pk}/award-status", {"award_status": target}, format="json")
    if target in Redemption.AWARD_TRANSITIONS[start]:
        assert resp.status_code == 200, resp.content
        assert resp.json()["award_status"] == target
        if target == "canceled":
            assert resp.json()["status"] == "canceled" and Reward.objects.get(pk=r.pk).stock == 3
    else:
        assert_error(resp, 409, "invalid_transition", "award_status")
        assert writes() == before and _row(pk) == row


@pytest.mark.django_db
def test_lifecycle_edge_refusals(api, rich_member, reward, writes):
    plain = redeem(api, rich_member, reward()).json()["id"]
    before = writes()
    # a redemption has no award status; a reward not shipped has no fulfillment
    assert_error(
        api.post(f"{BASE}/redemptions/{plain}/award-status", {"award_status": "claimed"}, format="json"),
        409,
        "invalid_transition",
    )
    assert_error(
        api.post(f"{BASE}/redemptions/{plain}/fulfillment", {"fulfillment_status": "confirmed_paid"}, format="json"),
        409,
        "invalid_transition",
    )
    # unknown values are bad input, not a conflict
    assert_error(
        api.post(f"{BASE}/redemptions/{plain}/status", {"status": "lost"}, format="json"), 400, "invalid", "status"
    )
    assert_error(
        api.post(f"{BASE}/redemptions/{plain}/fulfillment", {"fulfillment_status": "x"}, format="json"),
        400,
        "invalid",
        "fulfillment_status",
    )
    assert_error(api.post(f"{BASE}/redemptions/{plain}/status", {}, format="json"), 400, "invalid", "status")
    assert writes() == before
    # awaiting approval: not fulfilled yet
    waiting = redeem(api, rich_member, reward(requires_approval=True, requires_fulfillment=True)).json()["id"]
    before = writes()
    assert_error(
        api.post(f"{BASE}/redemptions/{waiting}/fulfillment", {"fulfillment_status": "confirmed_paid"}, format="json"),
        409,
        "invalid_transition",
    )
    assert writes() == before


@pytest.mark.django_db
def test_status_changes_need_their_permissions(rich_member, reward, support_user, auditor_user, writes):
    pk = redeem(api_client_for(support_user), rich_member, reward(requires_fulfillment=True)).json()["id"]
    approver = api_client_for(auditor_user)
    before = writes()
    assert_error(
        approver.post(f"{BASE}/redemptions/{pk}/status", {"status": "completed"}, format="json"),
        403,
        "permission_denied",
    )
    assert_error(
        approver.post(f"{BASE}/redemptions/{pk}/fulfillment", {"fulfillment_status": "confirmed_paid"}, format="json"),
        403,
        "permission_denied",
    )
    assert writes() == before


# --- lists -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_filters_pagination_and_ordering(
    api, rich_member, metric, reward, django_assert_max_num_queries, time_machine
):
    other = loyalty.enroll_member(external_id="M-2", email="bo@example.com", actor=SYSTEM)
    loyalty.credit_points(member=other, metric=metric, amount=500, actor=SYSTEM)
    shipped, plain, waiting = reward(requires_fulfillment=True), reward(), reward(requires_approval=True)
    t0 = dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC)
    time_machine.move_to(t0, tick=False)
    a = redeem(api, rich_member, shipped).json()["id"]
    time_machine.move_to(t0 + dt.timedelta(days=1), tick=False)
    b = redeem(api, other, plain).json()["id"]
    c = redeem(api, rich_member, waiting).json()["id"]
    d = api.post(
        f"{BASE}/awards/", {"member": "M-2", "reward": plain.external_id, "reason": "x"}, format="json"
    ).json()["id"]
    api.post(f"{BASE}/redemptions/{a}/fulfillment", {"fulfillment_status": "confirmed_paid"}, format="json")
    api.post(f"{BASE}/redemptions/{b}/status", {"status": "completed"}, format="json")

    def ids(**params):
        r = api.get(f"{BASE}/redemptions/", params)
        assert r.status_code == 200, r.content
        return [row["id"] for row in r.json()["results"]]

    assert ids() == [d, c, b, a]  # newest first, then by id
    assert ids(member="M-2") == [d, b]
    assert ids(member="NOPE") == []
    assert ids(reward=plain.external_id) == [d, b]
    assert ids(kind="award") == [d] and ids(kind="redemption") == [c, b, a]
    assert ids(status="completed") == [b]
    assert ids(award_status="awarded") == [d]
    assert ids(approval_status="submitted") == [c]
    assert ids(fulfillment_status="confirmed_paid") == [a]
    assert ids(created_before="2026-01-11T00:00:00Z") == [a]
    assert ids(created_after="2026-01-11T00:00:00+00:00") == [d, c, b]
    page = api.get(f"{BASE}/redemptions/", {"page_size": 2, "page": 2}).json()
    assert page["count"] == 4 and [row["id"] for row in page["results"]] == [b, a]
    assert_error(api.get(f"{BASE}/redemptions/", {"status": "nope"}), 400, "invalid", "status")
    assert_error(api.get(f"{BASE}/redemptions/", {"created_after": "yesterday"}), 400, "invalid", "created_after")
    # the list stays a fixed number of queries however many rows it shows
    free = reward(points=0)
    for _ in range(20):
        assert redeem(api, rich_member, free).status_code == 201
    with django_assert_max_num_queries(8):
        assert len(api.get(f"{BASE}/redemptions/", {"page_size": 100}).json()["results"]) == 24


# --- the schema -------------------------------------------------------------------------------

OUR_PATHS = [
    "/api/v1/redemptions/",
    "/api/v1/redemptions/{id}/",
    "/api/v1/redemptions/{id}/approve",
    "/api/v1/redemptions/{id}/reject",
    "/api/v1/redemptions/{id}/return",
    "/api/v1/redemptions/{id}/status",
    "/api/v1/redemptions/{id}/award-status",
    "/api/v1/redemptions/{id}/fulfillment",
    "/api/v1/redemptions/{id}/rollback",
    "/api/v1/awards/",
    "/api/v1/rollbacks/",
    "/api/v1/rollbacks/{id}/",
    "/api/v1/rollbacks/{id}/approve",
    "/api/v1/rollbacks/{id}/reject",
]

OUR_VIEWS = [
    "RedemptionList",
    "RedemptionDetail",
    "RedemptionApprove",
    "RedemptionReject",
    "RedemptionReturn",
    "RedemptionStatus",
    "RedemptionAwardStatus",
    "RedemptionFulfillment",
    "RedemptionRollback",
    "AwardCreate",
    "RollbackList",
    "RollbackDetail",
    "RollbackApprove",
    "RollbackReject",
]


@pytest.mark.django_db
def test_openapi_schema_lists_the_redemption_paths_without_warnings(api):
    from drf_spectacular.drainage import GENERATOR_STATS

    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        r = api.get(reverse("schema"), {"format": "json"})
    assert r.status_code == 200
    schema = r.json()
    for p in OUR_PATHS:
        assert p in schema["paths"], p
    ours = [
        msg
        for msg in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
        if "redemptions/api/redemptions.py" in msg
        or "redemptions/api/rollbacks.py" in msg
        or any(f"[{view}]" in msg or f"[{view} >" in msg for view in OUR_VIEWS)
    ]
    assert ours == [], ours
    post = schema["paths"]["/api/v1/redemptions/{id}/rollback"]["post"]
    assert "201" in post["responses"]
    assert schema["paths"]["/api/v1/redemptions/{id}/"]["get"]["parameters"][0]["schema"]["type"] == "integer"


# --- issue 12: no side doors around a pending approval --------------------------------------------


@pytest.mark.django_db
def test_nothing_moves_forward_while_approval_is_pending(api, approver_api, rich_member, reward, writes):
    """Was: the creator moved a submitted award to awarded/claimed, or a submitted redemption to
    processing/completed, around the approver."""
    r = reward(requires_approval=True, requires_fulfillment=True, stock=5)
    red = redeem(api, rich_member, r).json()["id"]
    award = api.post(
        f"{BASE}/awards/", {"member": "M-1", "reward": r.external_id, "reason": "VIP"}, format="json"
    ).json()["id"]
    before = writes()
    for pk, url, body in [
        (red, "status", {"status": "processing"}),
        (red, "status", {"status": "completed"}),
        (red, "status", {"status": "errored"}),
        (red, "fulfillment", {"fulfillment_status": "confirmed_paid"}),
        (red, "status", {"status": "canceled"}),  # an approver rejects or returns it instead
        (award, "award-status", {"award_status": "awarded"}),
        (award, "award-status", {"award_status": "canceled"}),
        (award, "status", {"status": "completed"}),
        (award, "fulfillment", {"fulfillment_status": "confirmed_paid"}),
    ]:
        resp = api.post(f"{BASE}/redemptions/{pk}/{url}", body, format="json")
        assert_error(resp, 409, "invalid_transition")
        assert "approval" in resp.json()["detail"]
    assert_error(
        api.post(f"{BASE}/redemptions/{red}/rollback", {"reason": "other"}, format="json"), 409, "invalid_transition"
    )
    assert writes() == before
    # once decided, they move
    approver_api.post(f"{BASE}/redemptions/{award}/approve", {}, format="json")
    resp = api.post(f"{BASE}/redemptions/{award}/award-status", {"award_status": "claimed"}, format="json")
    assert resp.status_code == 200 and resp.json()["award_status"] == "claimed"
    approver_api.post(f"{BASE}/redemptions/{red}/approve", {}, format="json")
    resp = api.post(f"{BASE}/redemptions/{red}/status", {"status": "processing"}, format="json")
    assert resp.status_code == 200 and resp.json()["status"] == "processing"


@pytest.mark.django_db
def test_nothing_moves_forward_while_a_rollback_waits_for_approval(api, rich_member, reward, writes):
    lead = api_client_for(make_user("lead", roles.SUPPORT_AGENT, roles.APPROVER))
    red = redeem(api, rich_member, reward(requires_fulfillment=True)).json()["id"]
    pending = lead.post(f"{BASE}/redemptions/{red}/rollback", {"reason": "fraud"}, format="json").json()
    assert pending["status"] == "pending_approval"
    before = writes()
    for url, body in [
        ("status", {"status": "processing"}),
        ("status", {"status": "completed"}),
        ("status", {"status": "canceled"}),
        ("fulfillment", {"fulfillment_status": "confirmed_paid"}),
    ]:
        assert_error(api.post(f"{BASE}/redemptions/{red}/{url}", body, format="json"), 409, "rollback_pending")
    assert writes() == before
    approver = api_client_for(make_user("alex2", roles.APPROVER))
    approver.post(f"{BASE}/rollbacks/{pending['id']}/reject", {"reason": "checked, not fraud"}, format="json")
    resp = api.post(f"{BASE}/redemptions/{red}/status", {"status": "processing"}, format="json")
    assert resp.status_code == 200, resp.content
