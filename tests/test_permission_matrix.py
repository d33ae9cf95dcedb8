"""The permission matrix: every role × every API endpoint and every admin action answers exactly
as docs/roles.md says, and docs/roles.md is what ``manage.py roles_doc`` makes of the code now.

* API: each endpoint (from the URL resolver, every method) is called by every role with a valid
  request, inside a savepoint that is rolled back, so the service behind it runs and checks its
  own permissions: allowed means a 2xx, 409 or 422 (the service ran); refused means 403;
  anonymous means 401.
* Admin: a bulk action is offered on its list to exactly the roles the table names; a page action
  answers 403 to a staff role without the permission (Integration users and anonymous visitors are
  sent to the login page) and runs for the others.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.admin import ModelAdmin
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from loyalty import permission_map, roles
from loyalty import services as loyalty
from loyalty.events import emit, webhooks
from loyalty.kernel import unit_of_work
from loyalty.models import Member, Reward, RuleSet, Transaction, WebhookDelivery
from promotions.models import Campaign, Code, CodeBatch, CodeRedemption
from redemptions import services as redemptions
from redemptions.models import Rollback
from retro.models import RetroClaim
from tests.helpers import api_client_for, make_user, seed_demo, shared_transaction

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")

DOC = Path(__file__).resolve().parents[1] / "docs" / "roles.md"
ALLOWED = {200, 201, 202, 204, 409, 422}


def test_docs_roles_md_is_what_the_code_says_now():
    text = DOC.read_text()
    assert permission_map.replace_generated(text) == text, "docs/roles.md is stale: run `manage.py roles_doc`"


def test_every_endpoint_and_admin_action_is_in_the_tables():
    tables = permission_map.parse_tables(DOC.read_text())
    assert set(tables["api"]) == {(e.method, e.path) for e in permission_map.api_endpoints()}
    assert len(tables["api"]) >= 60
    assert set(tables["admin"]) == {(a.screen, a.label, a.kind) for a in permission_map.admin_actions()}


# Admin URLs on an object that change nothing, or are tested elsewhere; every other one must be a
# declared page action (a new button cannot escape the matrix).
NOT_ACTIONS = {
    "promotions_code_qr": "an image",
    "promotions_codebatch_export": "an export (tests/test_exports.py)",
}


def test_every_admin_url_on_an_object_is_a_declared_page_action():
    declared = {action.url_name for _model, action in permission_map.page_actions()}
    undeclared = []
    for _model, model_admin in admin.site._registry.items():
        base = {p.name for p in ModelAdmin.get_urls(model_admin)}
        for pattern in model_admin.get_urls():
            name = pattern.name
            if name in base or name in NOT_ACTIONS or name.endswith("_simple_history"):
                continue
            on_object = "object_id>" in str(pattern.pattern) or "<id>" in str(pattern.pattern)
            if on_object and name not in declared:
                undeclared.append(name)
    assert undeclared == []


# --- the world the requests act on -------------------------------------------------------------


@pytest.fixture(scope="class")
def demo(django_db_setup, django_db_blocker):
    """The demo (4 members), seeded once for the class of tests that walk it."""
    with shared_transaction(django_db_blocker):
        seed_demo(members=4)
        yield


@pytest.fixture
def world(demo, admin_user):
    root = admin_user
    member = Member.objects.filter(status=Member.Status.ACTIVE).order_by("pk").first()
    metric = Reward.objects.order_by("pk").first().metric
    loyalty.adjust_points(member=member, metric=metric, amount=50_000, actor=root, reason="Matrix")
    badge = Reward.objects.create(external_id="RW-MATRIX", name="Matrix badge", type="badge", metric=metric, points=1)
    physical = Reward.objects.create(
        external_id="RW-MATRIX-SHIP",
        name="Matrix parcel",
        type="physical_product",
        metric=metric,
        points=1,
        requires_fulfillment=True,
    )
    gated = Reward.objects.create(
        external_id="RW-MATRIX-GATE", name="Matrix gate", type="badge", metric=metric, points=1, requires_approval=True
    )
    shipped = redemptions.redeem_reward(member=member, reward=physical, actor=root)
    submitted = redemptions.redeem_reward(member=member, reward=gated, actor=root)
    award = redemptions.award_reward(member=member, reward=badge, actor=root, reason="Matrix")
    spent = redemptions.redeem_reward(member=member, reward=badge, actor=root)
    rollback = Rollback.objects.filter(status=Rollback.Status.PENDING_APPROVAL).order_by("pk").first()
    if rollback is None:
        rollback = redemptions.rollback_redemption(redemption=spent, actor=root, reason="fraud")
    code = Code.objects.filter(status=Code.Status.ACTIVE, campaign__status=Campaign.Status.ACTIVE).order_by("pk")
    use = CodeRedemption.objects.filter(status=CodeRedemption.Status.APPLIED).order_by("pk").first()
    claim = RetroClaim.objects.filter(status=RetroClaim.Status.SUBMITTED).order_by("pk").first()
    draft = RuleSet.objects.filter(status=RuleSet.Status.DRAFT).order_by("pk").first()
    published = RuleSet.objects.filter(status=RuleSet.Status.PUBLISHED).order_by("-valid_from").first()
    if draft is None:
        draft = loyalty.create_rule_set(
            name="Matrix draft",
            valid_from=timezone.now() + dt.timedelta(days=400),
            rules=[{"name": "Visit", "metric": metric.code, "action": "fixed", "points": 1}],
            actor=root,
        )
    non_loyalty = Transaction.objects.filter(member__isnull=True).order_by("pk").first()
    bill = Transaction.objects.filter(member=member, returned_amount=0).order_by("pk").first()
    if bill is None:
        bill = loyalty.record_transaction(
            external_id="B-MATRIX",
            occurred_at=timezone.now() - dt.timedelta(hours=1),
            amount="50.00",
            currency="EUR",
            channel="web",
            store="Matrix",
            member=member,
            actor=root,
        )
    assert all(x is not None for x in (code.first(), use, claim, published, non_loyalty, rollback))
    hook, _ = webhooks.create_subscription(url="http://127.0.0.1:9/matrix", events=["*"], actor=root)
    with transaction.atomic():
        emit("member.enrolled", member)  # a delivery to list and replay
    delivery = WebhookDelivery.objects.get(subscription=hook)
    return {
        "webhook": hook,
        "delivery": delivery,
        "member": member,
        "metric": metric,
        "badge": badge,
        "shipped": shipped,
        "submitted": submitted,
        "award": award,
        "rollback": rollback,
        "code": code.first(),
        "use": use,
        "claim": claim,
        "draft": draft,
        "published": published,
        "non_loyalty": non_loyalty,
        "bill": bill,
        "campaign": code.first().campaign,
        "batch": CodeBatch.objects.order_by("pk").first(),
    }


def request_for(method: str, path: str, w: dict) -> tuple[str, dict | None]:
    """A valid request for the endpoint: the URL with real objects, and a body that passes validation."""
    m, now = w["member"].external_id, timezone.now()
    order = {"id": "o-matrix", "amount": "100.00", "channel": "web"}
    pk = {
        "/api/v1/campaigns/{pk}/": w["campaign"].pk,
        "/api/v1/campaigns/{pk}/code-batches/": w["campaign"].pk,
        "/api/v1/campaigns/{pk}/codes/": w["campaign"].pk,
        "/api/v1/code-batches/{pk}/": w["batch"].pk,
        "/api/v1/code-redemptions/{pk}/rollback": w["use"].pk,
        "/api/v1/redemptions/{pk}/": w["shipped"].pk,
        "/api/v1/redemptions/{pk}/approve": w["submitted"].pk,
        "/api/v1/redemptions/{pk}/reject": w["submitted"].pk,
        "/api/v1/redemptions/{pk}/return": w["submitted"].pk,
        "/api/v1/redemptions/{pk}/award-status": w["award"].pk,
        "/api/v1/redemptions/{pk}/fulfillment": w["shipped"].pk,
        "/api/v1/redemptions/{pk}/rollback": w["shipped"].pk,
        "/api/v1/redemptions/{pk}/status": w["shipped"].pk,
        "/api/v1/retro-claims/{pk}/": w["claim"].pk,
        "/api/v1/retro-claims/{pk}/approve": w["claim"].pk,
        "/api/v1/retro-claims/{pk}/reject": w["claim"].pk,
        "/api/v1/rollbacks/{pk}/": w["rollback"].pk,
        "/api/v1/rollbacks/{pk}/approve": w["rollback"].pk,
        "/api/v1/rollbacks/{pk}/reject": w["rollback"].pk,
        "/api/v1/rule-sets/{pk}/": w["draft"].pk,
        "/api/v1/rule-sets/{pk}/publish": w["draft"].pk,
        "/api/v1/rule-sets/{pk}/new-version": w["published"].pk,
        "/api/v1/rule-sets/{pk}/retire": w["published"].pk,
        "/api/v1/webhooks/{pk}/": w["webhook"].pk,
        "/api/v1/webhooks/{pk}/rotate-secret": w["webhook"].pk,
        "/api/v1/webhooks/{pk}/deliveries/": w["webhook"].pk,
        "/api/v1/webhook-deliveries/{pk}/replay": w["delivery"].pk,
    }.get(path)
    url = path.replace("{pk}", str(pk)).replace("{code}", w["code"].code)
    if path.startswith("/api/v1/rewards/{external_id}"):
        url = url.replace("{external_id}", w["badge"].external_id)
    elif path.startswith("/api/v1/transactions/{external_id}"):
        url = url.replace("{external_id}", w["bill"].external_id)
    url = url.replace("{external_id}", m)
    rule = {"name": "Visit", "metric": w["metric"].code, "action": "fixed", "points": 1}
    bodies = {
        ("POST", "/api/v1/awards/"): {"member": m, "reward": w["badge"].external_id, "reason": "Matrix"},
        ("POST", "/api/v1/campaigns/"): {"name": "Matrix campaign", "kind": "percent_discount", "value": "10"},
        ("PATCH", "/api/v1/campaigns/{pk}/"): {"description": "Matrix"},
        ("POST", "/api/v1/campaigns/{pk}/code-batches/"): {"count": 3, "length": 10},
        ("POST", "/api/v1/campaigns/{pk}/codes/"): {"code": "MATRIX-ONE", "max_uses": 1},
        ("POST", "/api/v1/code-redemptions/{pk}/rollback"): {"reason": "Matrix"},
        ("POST", "/api/v1/codes/redeem"): {"codes": [w["code"].code], "member": m, "order": order},
        ("POST", "/api/v1/codes/validate"): {"codes": [w["code"].code], "member": m, "order": order},
        ("POST", "/api/v1/members/"): {"external_id": "MATRIX-NEW"},
        ("PATCH", "/api/v1/members/{external_id}/"): {"name": "Matrix"},
        ("POST", "/api/v1/members/{external_id}/adjustments/"): {
            "metric": w["metric"].code,
            "amount": 5,
            "reason": "Matrix",
        },
        ("POST", "/api/v1/members/{external_id}/tier"): {"tier": "GOLD", "reason": "Matrix"},
        ("POST", "/api/v1/metrics/"): {"code": "matrix", "name": "Matrix"},
        ("PATCH", "/api/v1/program/"): {"retro_window_days": 120},
        ("POST", "/api/v1/redemptions/"): {"member": m, "reward": w["badge"].external_id},
        ("POST", "/api/v1/redemptions/{pk}/approve"): {},
        ("POST", "/api/v1/redemptions/{pk}/reject"): {"reason": "Matrix"},
        ("POST", "/api/v1/redemptions/{pk}/return"): {"reason": "Matrix"},
        ("POST", "/api/v1/redemptions/{pk}/award-status"): {"award_status": "claimed"},
        ("POST", "/api/v1/redemptions/{pk}/fulfillment"): {"fulfillment_status": "confirmed_paid"},
        ("POST", "/api/v1/redemptions/{pk}/rollback"): {"reason": "customer_request"},
        ("POST", "/api/v1/redemptions/{pk}/status"): {"status": "processing"},
        ("POST", "/api/v1/retro-claims/"): {"transaction": w["non_loyalty"].external_id, "member": m},
        ("POST", "/api/v1/retro-claims/{pk}/approve"): {},
        ("POST", "/api/v1/retro-claims/{pk}/reject"): {"reason": "Matrix"},
        ("POST", "/api/v1/rewards/"): {
            "external_id": "RW-MATRIX-NEW",
            "name": "Matrix",
            "type": "badge",
            "metric": w["metric"].code,
            "points": 10,
        },
        ("PATCH", "/api/v1/rewards/{external_id}/"): {"name": "Matrix renamed"},
        ("POST", "/api/v1/rollbacks/{pk}/approve"): {},
        ("POST", "/api/v1/rollbacks/{pk}/reject"): {"reason": "Matrix"},
        ("POST", "/api/v1/rule-sets/"): {
            "name": "Matrix",
            "valid_from": (now + dt.timedelta(days=500)).isoformat(),
            "rules": [rule],
        },
        ("PATCH", "/api/v1/rule-sets/{pk}/"): {"name": "Matrix draft renamed"},
        ("POST", "/api/v1/rule-sets/{pk}/new-version"): {},
        ("POST", "/api/v1/rule-sets/{pk}/publish"): {},
        ("POST", "/api/v1/rule-sets/{pk}/retire"): {"reason": "Matrix"},
        ("POST", "/api/v1/tiers/"): {"code": "MATRIX", "name": "Matrix", "rank": 77},
        ("POST", "/api/v1/transactions/"): {
            "external_id": "B-MATRIX-NEW",
            "occurred_at": (now - dt.timedelta(minutes=5)).isoformat(),
            "amount": "10.00",
            "currency": "EUR",
            "channel": "web",
            "store": "Matrix",
        },
        ("POST", "/api/v1/transactions/{external_id}/return"): {"reason": "Matrix"},
        ("POST", "/api/v1/webhooks/"): {"url": "http://127.0.0.1:9/new", "events": ["*"]},
        ("PATCH", "/api/v1/webhooks/{pk}/"): {"description": "Matrix"},
        ("DELETE", "/api/v1/webhooks/{pk}/"): {},
        ("POST", "/api/v1/webhooks/{pk}/rotate-secret"): {},
        ("POST", "/api/v1/webhook-deliveries/{pk}/replay"): {},
    }
    if method == "GET":
        return url, None
    assert (method, path) in bodies, f"give the matrix a valid body for {method} {path}"
    return url, bodies[(method, path)]


def rolled_back(call, *args, **kwargs):
    """Run one request in a unit of work that is rolled back: every role sees the same world (the
    services the request calls join it instead of committing on their own)."""
    cache.clear()  # no throttle or lockout carried from one call to the next
    with unit_of_work("test: one request, rolled back"):
        response = call(*args, **kwargs)
        transaction.set_rollback(True)
    return response


@pytest.fixture
def people(db):
    users = {role: make_user(f"matrix-{i}", role) for i, role in enumerate(roles.ROLES)}
    return users


def _json(body):
    return () if body is None else (json.dumps(body), "application/json")


def _offered_actions(client: Client, changelist: str) -> set[str]:
    response = client.get(changelist)
    if response.status_code != 200 or response.context is None:
        return set()
    form = response.context.get("action_form")
    return {str(label) for name, label in (form.fields["action"].choices if form else []) if name}


@pytest.mark.slow
@pytest.mark.django_db
class TestEveryRoleOnTheDemo:
    """Both walks share one seed of the demo (``demo``); each test adds its own ``world`` on top."""

    def test_every_role_calls_every_endpoint_as_docs_roles_md_says(self, world, people):
        table = permission_map.parse_tables(DOC.read_text())["api"]
        clients = {role: api_client_for(user) for role, user in people.items()}
        clients[permission_map.ANONYMOUS] = APIClient()
        failures = []
        for (method, path), allowed in sorted(table.items()):
            url, body = request_for(method, path, world)
            for role, client in clients.items():
                r = rolled_back(client.generic, method, url, *_json(body))
                if role == permission_map.ANONYMOUS:
                    ok = r.status_code == 401
                elif allowed[role]:
                    ok = r.status_code in ALLOWED or (method == "GET" and r.status_code == 200)
                else:
                    ok = r.status_code == 403
                if not ok:
                    expected = "401" if role == permission_map.ANONYMOUS else ("allowed" if allowed[role] else "403")
                    failures.append(
                        f"{role}: {method} {url} -> {r.status_code} (expected {expected}) {r.content[:200]!r}"
                    )
        assert not failures, "\n".join(failures)

    def test_every_role_gets_the_admin_actions_docs_roles_md_says(self, world, people, admin_user):
        table = permission_map.parse_tables(DOC.read_text())["admin"]
        clients = {}
        for role, user in people.items():
            clients[role] = Client()
            clients[role].force_login(user)
        clients[permission_map.ANONYMOUS] = Client()
        root = Client()
        root.force_login(admin_user)
        screens = {}
        for model, model_admin in admin.site._registry.items():
            name = str(model._meta.verbose_name_plural)
            screens[name[:1].upper() + name[1:]] = (model, model_admin)
        failures = []
        # bulk actions: offered on the list to exactly these roles
        for screen in sorted({s for s, _label, kind in table if kind == "bulk"}):
            model, _model_admin = screens[screen]
            changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
            for role, client in clients.items():
                offered = _offered_actions(client, changelist)
                for (s, label, kind), allowed in table.items():
                    if s != screen or kind != "bulk":
                        continue
                    expected = role != permission_map.ANONYMOUS and allowed[role]
                    if (label in offered) != expected:
                        failures.append(f"{role}: {screen} / {label} offered={label in offered}, doc says {expected}")
        # page actions: 403 (or the login page) for whoever may not, something else for the others
        login = reverse("admin:login")
        for model, action in permission_map.page_actions():
            screen = model._meta.verbose_name_plural
            allowed = table[(str(screen)[:1].upper() + str(screen)[1:], action.label, "page")]
            if action.on_object:
                obj = model._default_manager.order_by("pk").first()
                url = reverse(f"admin:{action.url_name}", args=[obj.pk])
            else:
                url = reverse(f"admin:{action.url_name}", kwargs=dict(action.kwargs))
            for role, client in clients.items():
                r = rolled_back(client.post, url, {})
                to_login = r.status_code == 302 and r["Location"].startswith(login)
                if role == permission_map.ANONYMOUS or role not in roles.STAFF_ROLES:
                    ok = to_login
                elif allowed[role]:
                    ok = r.status_code != 403 and not to_login and r.status_code < 500
                else:
                    ok = r.status_code == 403
                if not ok:
                    failures.append(f"{role}: POST {url} ({action.label}) -> {r.status_code}, doc says {allowed[role]}")
            assert rolled_back(root.post, url, {}).status_code != 403  # a superuser may do everything
        assert not failures, "\n".join(failures)


def test_a_role_gaining_a_permission_makes_the_doc_stale(monkeypatch):
    """What keeps the doc honest: give the Auditor one write permission and the tables change."""
    text = DOC.read_text()
    monkeypatch.setitem(
        roles.ROLE_PERMISSIONS, roles.AUDITOR, [*roles.ROLE_PERMISSIONS[roles.AUDITOR], "loyalty.adjust_points"]
    )
    assert permission_map.replace_generated(text) != text
    changed = permission_map.parse_tables(permission_map.replace_generated(text))["api"]
    assert changed[("POST", "/api/v1/members/{external_id}/adjustments/")][roles.AUDITOR] is True
    assert re.search(r"adjustments/` \| .*\|", text)
