"""The rule table of docs/rollback-policy.md, row by row, through the API.

Every give-back path (rollback, partial rollback, cancel, award cancel, reject, return, rollback
approval, award expiry) goes through one gate; each case below builds the condition of one row,
takes one path and checks the outcome (and, for a refusal, that nothing was written). The last test
reads the doc and checks that it lists exactly these rows with these outcomes.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone

from loyalty import roles
from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, PointBalance, ProgramSettings, Reward
from loyalty.selectors import verify_ledger
from promotions.models import AbuseSignal, Code
from redemptions import services
from redemptions.models import Redemption, Rollback
from tests.helpers import BASE, api_client_for, balance, make_user

DOC = Path(__file__).resolve().parents[2] / "docs" / "rollback-policy.md"


class World:
    """Clients, a member with 5000 points and reward makers; every step through the API."""

    def __init__(self, member, metric, reward, code_reward, admin_user):
        loyalty.credit_points(member=member, metric=metric, amount=5000, reason="opening", actor=SYSTEM)
        self.member, self.metric, self._reward, self._code_reward = member, metric, reward, code_reward
        self.api = api_client_for(make_user("pos", roles.INTEGRATION))  # redeems, cancels, requests rollbacks
        self.lead = api_client_for(make_user("lead", roles.SUPPORT_AGENT, roles.APPROVER))
        self.approver = api_client_for(make_user("alex", roles.APPROVER))
        self.admin = admin_user
        self.policy = ProgramSettings.load()

    def set_policy(self, **fields):
        for key, value in fields.items():
            setattr(self.policy, key, value)
        self.policy.save()

    def reward(self, **fields):
        return self._reward(stock=fields.pop("stock", 5), **fields)

    def code_reward(self, points=100):
        Reward.objects.filter(pk=self._code_reward.pk).update(stock=5, points=points)
        return Reward.objects.get(pk=self._code_reward.pk)

    def post(self, url, body=None, client=None):
        return (client or self.api).post(f"{BASE}/{url}", body or {}, format="json")

    def redeem(self, reward=None, **fields):
        reward = reward or self.reward(**fields)
        resp = self.post("redemptions/", {"member": self.member.external_id, "reward": reward.external_id})
        assert resp.status_code == 201, resp.content
        return resp.json()["id"]

    def award(self, reward=None, **fields):
        reward = reward or self.reward(points=0, **fields)
        resp = self.post(
            "awards/", {"member": self.member.external_id, "reward": reward.external_id, "reason": "goodwill"}
        )
        assert resp.status_code == 201, resp.content
        return resp.json()["id"]

    def ok(self, url, body=None, client=None, status=200):
        resp = self.post(url, body, client)
        assert resp.status_code == status, resp.content
        return resp.json()

    def use_code(self, rid):
        code = Redemption.objects.get(pk=rid).issued_code.code
        body = {"codes": [code], "member": self.member.external_id, "order": {"id": f"o-{rid}", "amount": "50.00"}}
        return self.ok("codes/redeem", body, status=201)["code_redemptions"][0]["id"]

    def ship(self, rid, *statuses):
        for status in statuses:
            self.ok(f"redemptions/{rid}/fulfillment", {"fulfillment_status": status})

    def pending_rollback(self, rid, **body):
        rollback = self.ok(f"redemptions/{rid}/rollback", {"reason": "fraud", **body}, client=self.lead, status=201)
        assert rollback["status"] == "pending_approval"
        return rollback["id"]

    def imported(self):
        red = services.import_legacy_redemption(
            member=self.member,
            reward=self.reward(),
            quantity=1,
            points_spent=100,
            status="completed",
            created_at=timezone.now() - dt.timedelta(days=2),
            external_ref=f"OLD-{Redemption.objects.count()}",
            actor=self.admin,
        )
        return red.pk

    def writes(self):
        return (
            list(Rollback.objects.order_by("pk").values_list("status", "points_returned")),
            LedgerEntry.objects.count(),
            list(PointBalance.objects.order_by("pk").values_list("balance", "pending", "debt")),
            list(
                Redemption.objects.order_by("pk").values_list(
                    "status", "award_status", "approval_status", "fulfillment_status", "points_returned"
                )
            ),
            list(Reward.objects.order_by("pk").values_list("stock", flat=True)),
            list(Code.objects.order_by("pk").values_list("status", "uses")),
        )


@pytest.fixture
def world(member, metric, reward, code_reward, admin_user):
    return World(member, metric, reward, code_reward, admin_user)


# --- the paths ---------------------------------------------------------------------------------


def take(w: World, path: str, rid: int, **kw):
    """Take one path on redemption ``rid``; the response."""
    client = kw.pop("client", None)
    if path in ("reject", "return"):
        return w.post(f"redemptions/{rid}/{path}", {"reason": "not available"}, client or w.approver)
    if path == "rollback approval":
        return w.post(f"rollbacks/{kw['rollback']}/approve", {}, client or w.approver)
    client = client or w.api
    if path == "rollback":
        return w.post(f"redemptions/{rid}/rollback", {"reason": kw.get("reason", "customer_request")}, client)
    if path == "partial rollback":
        body = {"reason": kw.get("reason", "customer_request"), "points": kw.get("points", 10)}
        return w.post(f"redemptions/{rid}/rollback", body, client)
    if path == "cancel":
        body = {"status": "canceled", "reason": "customer changed their mind"}
        return w.post(f"redemptions/{rid}/status", body, client)
    if path == "award cancel":
        return w.post(f"redemptions/{rid}/award-status", {"award_status": "canceled"}, client)
    if path == "status forward":
        return w.post(f"redemptions/{rid}/status", {"status": "processing"}, client)
    if path == "award status forward":
        return w.post(f"redemptions/{rid}/award-status", {"award_status": "awarded"}, client)
    if path == "fulfillment":
        return w.post(f"redemptions/{rid}/fulfillment", {"fulfillment_status": "confirmed_paid"}, client)
    raise AssertionError(path)


def outcome(resp) -> str:
    """``"<status> <code>"`` for a refusal; ``"<status> <rollback or redemption status>"`` otherwise."""
    body = resp.json()
    if resp.status_code >= 400:
        assert set(body) == {"code", "detail", "errors"}, body
        return f"{resp.status_code} {body['code']}"
    return f"{resp.status_code} {body['status']}"


# --- the conditions: each builds the row's situation and returns what the path acts on -------------


def within_policy(w, path):
    if path == "award cancel":
        return {"rid": w.award(w.code_reward(points=0))}
    return {"rid": w.redeem(w.code_reward())}


def older_than_window(w, path):
    with time_machine.travel(timezone.now() - dt.timedelta(days=31), tick=False):
        rid = w.award() if path == "award cancel" else w.redeem()
    return {"rid": rid}


def status_excluded(w, path):
    rid = w.award() if path == "award cancel" else w.redeem()
    w.ok(f"redemptions/{rid}/status", {"status": "completed"})
    w.set_policy(rollback_statuses=["pending", "processing", "errored"])
    return {"rid": rid}


def shipped(w, path):
    rid = w.award(requires_fulfillment=True) if path == "award cancel" else w.redeem(requires_fulfillment=True)
    w.ship(rid, "confirmed_paid", "shipped")
    return {"rid": rid}


def code_used(w, path):
    rid = w.award(w.code_reward(points=0)) if path == "award cancel" else w.redeem(w.code_reward(points=500))
    w.use_code(rid)
    return {"rid": rid}


def code_use_rolled_back(w, path):
    rid = w.redeem(w.code_reward(points=500))
    use = w.use_code(rid)
    w.ok(f"code-redemptions/{use}/rollback", {"reason": "order canceled"})
    return {"rid": rid}


def rollback_pending(w, path):
    rid = w.redeem(requires_fulfillment=True, points=500)
    w.pending_rollback(rid, points=100)
    return {"rid": rid}


def fraud(w, path):
    return {"rid": w.redeem(), "reason": "fraud"}


def over_threshold(w, path):
    w.set_policy(rollback_approval_above_points=300)
    rid = w.redeem(points=500)
    assert w.ok(f"redemptions/{rid}/rollback", {"reason": "other", "points": 200}, status=201)["status"] == "executed"
    return {"rid": rid, "points": 200}


def member_limit(w, path):
    w.set_policy(rollback_max_per_member_30_days=2)
    w.ok(f"redemptions/{w.redeem()}/rollback", {"reason": "other"}, status=201)
    w.ok(f"redemptions/{w.redeem()}/status", {"status": "canceled"})  # cancels count too
    return {"rid": w.redeem()}


def other_needs_approval(w, path):
    w.set_policy(rollback_approval_reasons=["fraud", "other"])
    return {"rid": w.redeem()}


def free_award_fraud_or_limit(w, path):
    w.set_policy(rollback_max_per_member_30_days=0)
    return {"rid": w.award(), "reason": "fraud"}


def partial_not_allowed(w, path):
    w.set_policy(rollback_partial_allowed=False)
    return {"rid": w.redeem()}


def approval_by_requester(w, path):
    rid = w.redeem()
    return {"rid": rid, "rollback": w.pending_rollback(rid), "client": w.lead}


def code_used_while_waiting(w, path):
    rid = w.redeem(w.code_reward())
    rollback = w.pending_rollback(rid)
    w.use_code(rid)
    return {"rid": rid, "rollback": rollback}


def approval_after_window(w, path):
    start = timezone.now() - dt.timedelta(days=35)
    with time_machine.travel(start, tick=False):
        rid = w.redeem()
    with time_machine.travel(start + dt.timedelta(days=1), tick=False):
        rollback = w.pending_rollback(rid)  # requested within the window, decided 34 days later
    return {"rid": rid, "rollback": rollback}


def approval_submitted(w, path):
    fields = {"requires_approval": True, "requires_fulfillment": True}
    return {"rid": w.award(**fields) if "award" in path else w.redeem(**fields)}


def submitted_past_window(w, path):
    with time_machine.travel(timezone.now() - dt.timedelta(days=60), tick=False):
        rid = w.redeem(requires_approval=True)
    return {"rid": rid}


def submitted_by_decider(w, path):
    resp = w.post(
        "redemptions/", {"member": w.member.external_id, "reward": w.reward(requires_approval=True).external_id}, w.lead
    )
    return {"rid": resp.json()["id"], "client": w.lead}


def imported(w, path):
    return {"rid": w.imported()}


def more_than_left(w, path):
    rid = w.redeem()
    return {"rid": rid, "points": 101}


# (row, path, condition, expected outcome)
CASES = [
    ("R01", "rollback", within_policy, "201 executed"),
    ("R02", "partial rollback", within_policy, "201 executed"),
    ("R03", "cancel", within_policy, "200 canceled"),
    ("R04", "award cancel", within_policy, "200 canceled"),
    *[("R05", p, older_than_window, "422 rollback_window_closed") for p in ("rollback", "partial rollback", "cancel")],
    ("R06", "award cancel", older_than_window, "200 canceled"),
    *[
        ("R07", p, status_excluded, "409 invalid_transition")
        for p in ("rollback", "partial rollback", "cancel", "award cancel")
    ],
    *[
        ("R08", p, shipped, "409 invalid_transition")
        for p in ("rollback", "partial rollback", "cancel", "award cancel")
    ],
    *[
        ("R09", p, code_used, "409 code_already_used")
        for p in ("rollback", "partial rollback", "cancel", "award cancel")
    ],
    *[("R10", p, code_use_rolled_back, "201 executed") for p in ("rollback", "partial rollback")],
    *[("R11", p, rollback_pending, "409 rollback_pending") for p in ("rollback", "partial rollback", "cancel")],
    *[("R12", p, rollback_pending, "409 rollback_pending") for p in ("status forward", "fulfillment")],
    ("R13", "rollback", fraud, "201 pending_approval"),
    ("R14", "partial rollback", over_threshold, "201 pending_approval"),
    ("R15", "cancel", over_threshold, "422 rollback_approval_required"),
    ("R16", "rollback", member_limit, "201 pending_approval"),
    ("R17", "cancel", member_limit, "422 rollback_approval_required"),
    ("R18", "cancel", other_needs_approval, "422 rollback_approval_required"),
    ("R19", "rollback", free_award_fraud_or_limit, "201 executed"),
    ("R19", "award cancel", free_award_fraud_or_limit, "200 canceled"),
    ("R20", "partial rollback", partial_not_allowed, "422 partial_not_allowed"),
    ("R21", "rollback approval", approval_by_requester, "422 four_eyes_required"),
    ("R22", "rollback approval", code_used_while_waiting, "409 code_already_used"),
    ("R23", "rollback approval", approval_after_window, "200 executed"),
    *[
        ("R24", p, approval_submitted, "409 invalid_transition")
        for p in ("rollback", "partial rollback", "cancel", "award cancel")
    ],
    *[
        ("R25", p, approval_submitted, "409 invalid_transition")
        for p in ("status forward", "award status forward", "fulfillment")
    ],
    *[("R26", p, submitted_past_window, "200 canceled") for p in ("reject", "return")],
    *[("R27", p, submitted_by_decider, "422 four_eyes_required") for p in ("reject", "return")],
    *[("R28", p, imported, "409 invalid_transition") for p in ("rollback", "partial rollback")],
    ("R29", "cancel", imported, "200 canceled"),
    *[("R32", p, more_than_left, "409 exceeds_spent") for p in ("partial rollback",)],
]


@pytest.mark.django_db
@pytest.mark.parametrize(("row", "path", "condition", "expected"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_rule_table_row(world, row, path, condition, expected):
    w = world
    given = condition(w, path)
    rid = given.pop("rid")
    before_rows = {r.pk: r.points_returned for r in Redemption.objects.all()}
    before = w.writes()
    spent_before = balance(w.member)
    resp = take(w, path, rid, **given)
    assert outcome(resp) == expected, resp.content
    red = Redemption.objects.get(pk=rid)
    if resp.status_code >= 400:
        assert w.writes() == before  # a refusal writes nothing
    elif expected.endswith(("executed", "canceled")) and path not in ("partial rollback",) and row != "R29":
        # everything left came back, the redemption is canceled, its unused code voided
        assert red.status == "canceled" and red.points_returned == red.points_spent
        assert balance(w.member) == spent_before + red.points_spent - before_rows[rid]
        if red.issued_code_id:
            assert Code.objects.get(pk=red.issued_code_id).status == "void"
        if red.fulfillment_status is None and red.channel != "import":
            assert red.stock_returned
    if row == "R02" or (row == "R10" and path == "partial rollback"):
        assert red.status == "pending" and red.points_returned == 10
        assert Code.objects.get(pk=red.issued_code_id).status == "active"
    if row == "R03":
        listed = w.api.get(f"{BASE}/rollbacks/", {"via": "cancel"}).json()["results"]
        assert [(r["redemption"], r["via"], r["reason"]) for r in listed] == [(rid, "cancel", "other")]
        [rollback] = Rollback.objects.filter(redemption=red)
        assert (rollback.via, rollback.reason, rollback.status, rollback.points_returned) == (
            "cancel",
            "other",
            "executed",
            100,
        )
    if row in ("R13", "R14", "R16"):
        assert red.points_returned == before_rows[rid] and balance(w.member) == spent_before  # nothing moves yet
    if row == "R16":
        assert AbuseSignal.objects.filter(kind="repeated_rollbacks", subject=str(w.member.pk)).exists()
    if row == "R15":
        assert "500 points in total > 300" in resp.json()["detail"]
    if row == "R22":
        assert Rollback.objects.get(pk=given["rollback"]).status == "pending_approval"
    if row == "R26":
        assert red.approval_status == ("rejected" if path == "reject" else "returned")
        assert red.points_returned == 100 and red.stock_returned
        assert not Rollback.objects.filter(redemption=red).exists()
    if row == "R29":
        assert red.status == "canceled" and LedgerEntry.objects.count() == before[1]
        assert not Rollback.objects.exists()
    assert verify_ledger().ok


# --- award expiry (a beat task, no user): R30, R31 -----------------------------------------------


@pytest.mark.django_db
def test_R30_award_expiry_cancels_an_unclaimed_free_award(world):
    w = world
    rid = w.award(w.code_reward(points=0))
    Redemption.objects.filter(pk=rid).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert services.expire_awards() == 1
    red = Redemption.objects.get(pk=rid)
    assert (red.status, red.award_status, red.stock_returned) == ("canceled", "canceled", True)
    assert Code.objects.get(pk=red.issued_code_id).status == "void"
    assert Reward.objects.get(pk=red.reward_id).stock == 5
    assert not Rollback.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("condition", ["code used", "shipped", "approval submitted"])
def test_R31_award_expiry_skips_what_was_received_or_waits_for_a_decision(world, condition):
    w = world
    if condition == "code used":
        rid = w.award(w.code_reward(points=0))
        w.use_code(rid)
    elif condition == "shipped":
        rid = w.award(requires_fulfillment=True)
        w.ship(rid, "confirmed_paid", "shipped")
    else:
        rid = w.award(requires_approval=True)
    Redemption.objects.filter(pk=rid).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    before = w.writes()
    assert services.expire_awards() == 0
    assert w.writes() == before


# --- the doc and the tests list the same rows -----------------------------------------------------

ROW = re.compile(r"^\| (R\d\d) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$")


def doc_rows() -> dict[str, tuple[list[str], str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line.strip())
        if m:
            rows[m.group(1)] = ([p.strip() for p in m.group(2).split(",")], m.group(4).strip())
    return rows


def test_the_doc_lists_exactly_the_rows_the_tests_run():
    rows = doc_rows()
    tested = {(row, path) for row, path, _, _ in CASES} | {("R30", "award expiry"), ("R31", "award expiry")}
    documented = {(row, path) for row, (paths, _) in rows.items() for path in paths}
    assert documented == tested
    for row, _path, _, expected in CASES:
        doc_outcome = rows[row][1]
        status = expected.split(" ", 1)[0]
        assert f"`{expected}`" in doc_outcome or (status == "200" and "`200`" in doc_outcome), (row, expected)
