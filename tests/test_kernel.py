"""The house kernel (loyalty.kernel) and the rules it stands for, checked on the code itself.

- the transition helper: checks the table, sets the field, records who and why;
- the actor: a missing actor holds no permission, SYSTEM holds all;
- outer services start the transaction (durable: refused inside any other atomic block but a
  ``unit_of_work``, opened only by the callers named for it) and never nest; building blocks need
  the caller's; every service takes ``actor`` as a required keyword and ``None`` is no actor;
- guards over the source: no private name imported across apps, no status field assigned outside
  the helper, every public service function outer or documented, no services module over 450
  lines, loyalty's role map names no other app's permission, every error code registered and
  documented in docs/api.md.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import re

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import transaction

from loyalty import kernel
from loyalty.exceptions import ERROR_CODES, DomainError
from loyalty.kernel import SYSTEM, InvalidTransition, PermissionRequired

ROOT = pathlib.Path(settings.BASE_DIR)
APPS = ["loyalty", "promotions", "redemptions", "retro"]
STATUS_FIELDS = {"status", "approval_status", "award_status", "fulfillment_status"}
# The delivery state machines — the outbox's OutboxMessage, the webhooks' WebhookDelivery and the
# member notification log — move their status with compare-and-set UPDATEs
# (``status__in=<Model>.sources(target)``: their table check) from many workers at once, and keep
# no per-row history by design (each is itself a log); people's re-sends and replays go through
# the helper.
STATUS_UPDATE_ALLOWED = {"loyalty/outbox.py", "loyalty/events/webhooks.py", "loyalty/notifications.py"}
# Phrases a public services function's docstring uses when it is not an @outer_service.
NOT_OUTER = ("Building block", "Runs its own transactions", "No transaction")


def _sources(*, services_only: bool = False) -> list[pathlib.Path]:
    files = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "/migrations/" in rel:
                continue
            if services_only and not (rel.startswith(f"{app}/services/") or rel == f"{app}/services.py"):
                continue
            files.append(path)
    return files


def _rel(path: pathlib.Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _tree(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


# --- the transition helper ------------------------------------------------------------------


@pytest.mark.django_db
def test_transition_checks_the_table_sets_the_field_and_records_who_and_why(admin_user):
    from promotions.models import Campaign

    campaign = Campaign.objects.create(name="Spring", kind=Campaign.Kind.PERCENT_DISCOUNT, value=10)
    kernel.transition(campaign, "status", Campaign.Status.ACTIVE, actor=admin_user, reason="Launch")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE
    last = campaign.history.latest()
    assert (last.status, last.history_user, last.history_change_reason) == ("active", admin_user, "Launch")

    with pytest.raises(InvalidTransition) as exc:
        kernel.transition(campaign, "status", Campaign.Status.DRAFT, actor=admin_user, reason="Back")
    assert exc.value.code == "invalid_transition"
    assert list(exc.value.errors) == ["status"]
    assert exc.value.errors["status"][0].startswith("Allowed from active:")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE
    assert campaign.history.count() == 2


def test_several_moves_at_once_set_nothing_unless_all_are_allowed():
    from redemptions.models import Redemption

    r = Redemption(status=Redemption.Status.PENDING, award_status=Redemption.AwardStatus.CANCELED)
    with pytest.raises(InvalidTransition) as exc:  # the status may move, the award status may not
        kernel.transition(
            r,
            {"status": Redemption.Status.COMPLETED, "award_status": Redemption.AwardStatus.AWARDED},
            actor=SYSTEM,
            reason="Both",
        )
    assert "award_status" in exc.value.errors
    assert (r.status, r.award_status) == (Redemption.Status.PENDING, Redemption.AwardStatus.CANCELED)


def test_the_table_of_a_field_is_found_by_name():
    from redemptions.models import Redemption

    assert kernel.transitions_of(Redemption, "status") is Redemption.STATUS_TRANSITIONS
    assert kernel.transitions_of(Redemption, "approval_status") is Redemption.APPROVAL_TRANSITIONS
    assert kernel.transitions_of(Redemption, "award_status") is Redemption.AWARD_TRANSITIONS
    assert kernel.transitions_of(Redemption, "fulfillment_status") is Redemption.FULFILLMENT_TRANSITIONS
    with pytest.raises(LookupError):
        kernel.transitions_of(Redemption, "channel")


# --- actors and checks ----------------------------------------------------------------------


def test_a_missing_actor_holds_no_permission_and_the_system_holds_all():
    with pytest.raises(PermissionRequired):
        kernel.require_perm(None, "loyalty.adjust_points")
    with pytest.raises(PermissionRequired):
        kernel.require_perm(AnonymousUser(), "loyalty.adjust_points")
    kernel.require_perm(SYSTEM, "loyalty.adjust_points")
    assert kernel.history_user(SYSTEM) is None


def test_the_system_is_nobody_for_four_eyes():
    kernel.require_four_eyes(None, SYSTEM, "x")
    kernel.require_four_eyes(7, SYSTEM, "x")

    class Person:
        pk = 7

    with pytest.raises(kernel.FourEyesRequired):
        kernel.require_four_eyes(7, Person(), "You asked for it.")


@pytest.mark.parametrize("value", [True, 1.0, "3", None, 0, -1, 11])
def test_a_whole_number_check_refuses_what_is_not_one_in_range(value):
    with pytest.raises(kernel.InvalidInput) as exc:
        kernel.check_whole_number(value, field="n", detail="n is 1 to 10.", error="Between 1 and 10.", maximum=10)
    assert exc.value.errors == {"n": ["Between 1 and 10."]}


def test_a_reason_is_required_and_stripped():
    assert kernel.require_reason("  why ") == "why"
    with pytest.raises(kernel.InvalidInput):
        kernel.require_reason("   ")


# --- model building blocks, unique inserts, error declarations -------------------------------


def test_a_choices_table_derives_labels_from_values_unless_named():
    from loyalty.kernel.models import choices

    Status = choices("Status", "pending rolled_back api", labels={"api": "API"})
    assert Status.choices == [("pending", "Pending"), ("rolled_back", "Rolled back"), ("api", "API")]
    assert Status.ROLLED_BACK == "rolled_back" and Status("api") is Status.API
    with pytest.raises(ValueError, match="labels for values it does not have"):
        choices("Status", "pending", labels={"penidng": "Pending"})


def test_model_choices_are_named_after_their_model():
    from redemptions.models import Redemption

    assert repr(Redemption.Status.PENDING) == "Redemption.Status.PENDING"
    assert Redemption.Status.__module__ == "redemptions.models"


def test_an_optional_ref_is_a_protected_nullable_foreign_key_without_reverse():
    from redemptions.models import Redemption

    field = Redemption._meta.get_field("decided_by")
    assert (field.null, field.blank, field.remote_field.on_delete.__name__) == (True, True, "PROTECT")
    assert field.remote_field.related_name == "+"


@pytest.mark.django_db
def test_save_unique_turns_a_unique_violation_into_the_given_error_and_keeps_the_transaction():
    from loyalty.models import Metric

    Metric.objects.create(code="miles", name="Miles")
    taken = kernel.AlreadyExists("Miles exist.")
    with transaction.atomic():
        with pytest.raises(kernel.AlreadyExists) as exc:
            kernel.save_unique(Metric(code="miles", name="Again"), actor=SYSTEM, reason="Twin", duplicate=taken)
        assert exc.value is taken
        assert Metric.objects.filter(code="miles").count() == 1  # the transaction is still usable
    kernel.save_unique(Metric(code="credits", name="Credits"), actor=SYSTEM, reason="New", duplicate=taken)
    assert Metric.objects.get(code="credits").history.get().history_change_reason == "New"


def test_an_error_declared_in_its_class_line_has_its_code_status_and_detail_registered():
    assert (kernel.NotFound.code, kernel.NotFound.status, kernel.NotFound().detail) == ("not_found", 404, "Not found.")
    assert kernel.AlreadyExists.status == 409  # inherited from Conflict
    assert ERROR_CODES["already_exists"].status == 409
    assert ERROR_CODES["invalid"].meaning == "Malformed or invalid input caught by a service (400)."
    assert kernel.NotFound("Gone.", code="custom").as_dict() == {"code": "custom", "detail": "Gone.", "errors": {}}


# --- transactions ---------------------------------------------------------------------------


@kernel.outer_service
def _outer_inner():
    return "inner"


@kernel.outer_service
def _outer_calling_outer():
    return _outer_inner()


@pytest.mark.django_db
def test_an_outer_service_runs_durable_inside_a_test_and_never_nests():
    """pytest-django's django_db is a TestCase: durable blocks are allowed at the test's level."""
    assert _outer_inner() == "inner"
    with pytest.raises(RuntimeError, match="outer service"):
        _outer_calling_outer()
    with transaction.atomic(durable=True):  # what outer_service opens at the top
        pass


@pytest.mark.django_db
def test_an_outer_service_refuses_any_callers_transaction_and_says_which_and_what_to_do():
    with pytest.raises(RuntimeError) as exc, transaction.atomic():
        _outer_inner()
    message = str(exc.value)
    assert "tests.test_kernel._outer_inner is an outer service" in message
    assert "durable" in message and "unit_of_work" in message
    with pytest.raises(RuntimeError, match=r"own_transaction\(\)"), transaction.atomic(), kernel.own_transaction():
        pass
    with pytest.raises(RuntimeError, match="unit_of_work"), transaction.atomic(), kernel.unit_of_work("late"):
        pass


@pytest.mark.django_db
def test_outer_services_in_a_unit_of_work_commit_together_or_not_at_all():
    from loyalty.models import Metric

    @kernel.outer_service
    def make(code: str) -> None:
        kernel.in_transaction()
        assert not kernel.in_unit_of_work()  # inside its own savepoint of the unit
        Metric.objects.create(code=code, name=code)

    class Failed(Exception):
        pass

    with pytest.raises(Failed), kernel.unit_of_work("test: two services, then a failure"):
        assert kernel.in_unit_of_work()
        make("a")
        make("b")
        with kernel.own_transaction():  # a job's piece joins it too
            Metric.objects.create(code="c", name="c")
        raise Failed
    assert not Metric.objects.filter(code__in=["a", "b", "c"]).exists()

    with kernel.unit_of_work("outer"):
        make("a")
        with kernel.unit_of_work("nested"):  # a unit inside a unit joins it (a savepoint)
            make("b")
        with pytest.raises(RuntimeError, match=r"inside unit_of_work\('outer'\)"), transaction.atomic():
            make("c")  # a plain block inside the unit is still someone else's transaction
    assert set(Metric.objects.filter(code__in=["a", "b", "c"]).values_list("code", flat=True)) == {"a", "b"}


def test_a_building_block_needs_its_callers_transaction():
    with pytest.raises(RuntimeError, match="caller's transaction"):
        kernel.in_transaction()


def _outer_services() -> list[tuple[str, str]]:
    """(module, name) of every function decorated ``@outer_service`` in the apps' code."""
    found = []
    for path in _sources():
        for node in _tree(path).body:
            if isinstance(node, ast.FunctionDef) and any(
                ast.unparse(d).split(".")[-1] == "outer_service" for d in node.decorator_list
            ):
                found.append((_rel(path)[:-3].replace("/", "."), node.name))
    return found


@pytest.mark.django_db
def test_every_outer_service_is_durable_it_refuses_to_run_inside_an_atomic_block():
    services = _outer_services()
    assert len(services) > 40, "the scan found the outer services"
    joined = []
    for module, name in services:
        func = getattr(importlib.import_module(module), name)
        assert getattr(func, "__outer_service__", False), f"{module}.{name}"
        try:
            with transaction.atomic():
                func()  # refused before its body runs (which would want arguments)
        except RuntimeError as exc:
            assert f"{module}.{name} is an outer service" in str(exc)
        else:
            joined.append(f"{module}.{name}")
    assert joined == []


def test_every_service_takes_the_actor_as_a_required_keyword():
    """No service defaults ``actor`` (to ``SYSTEM`` or ``None``): a caller that forgets it fails."""
    defaulted, checked = [], 0
    for name in _service_modules():
        module = importlib.import_module(name)
        for attr, func in vars(module).items():
            if attr.startswith("_") or not inspect.isfunction(func) or func.__module__ != name:
                continue
            actor = inspect.signature(func).parameters.get("actor")  # follows @outer_service's __wrapped__
            if actor is None:
                continue
            checked += 1
            if actor.default is not inspect.Parameter.empty or actor.kind is not inspect.Parameter.KEYWORD_ONLY:
                defaulted.append(f"{name}.{attr}")
    assert checked > 40 and defaulted == []


@pytest.mark.django_db
def test_none_is_no_actor_anywhere(admin_user):
    from loyalty import services
    from loyalty.models import Member
    from promotions.models import Campaign

    with pytest.raises(TypeError, match="actor=None"):
        services.enroll_member(external_id="M-NONE", actor=None)
    with pytest.raises(TypeError, match="actor"):
        services.enroll_member(external_id="M-NONE")  # a required keyword
    assert not Member.objects.filter(external_id="M-NONE").exists()
    campaign = Campaign.objects.create(name="Spring", kind=Campaign.Kind.PERCENT_DISCOUNT, value=10)
    with pytest.raises(TypeError, match="actor=None"):
        kernel.transition(campaign, "status", Campaign.Status.ACTIVE, actor=None, reason="Launch")
    with pytest.raises(TypeError, match="actor=None"):
        kernel.save_with_history(campaign, actor=None, reason="x")
    with pytest.raises(TypeError, match="not an actor"):
        kernel.check_actor("admin")
    kernel.check_actor(SYSTEM)
    kernel.check_actor(admin_user)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT


# --- guards over the source -----------------------------------------------------------------


def test_no_private_name_is_imported_across_apps():
    offenders = []
    for path in _sources():
        own = _rel(path).split("/")[0]
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                app = node.module.split(".")[0]
                if app in APPS and app != own:
                    offenders += [
                        f"{_rel(path)}:{node.lineno} {node.module}.{a.name}"
                        for a in node.names
                        if a.name.startswith("_")
                    ]
    assert offenders == []


def _status_writes(node: ast.AST, rel: str) -> list[str]:
    """What in ``node`` writes a status field other than through the helper."""
    if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [ast.unparse(node) for t in targets if isinstance(t, ast.Attribute) and t.attr in STATUS_FIELDS]
    if not isinstance(node, ast.Call):
        return []
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in ("update", "bulk_update", "update_or_create"):
        if rel in STATUS_UPDATE_ALLOWED:
            return []
        return [f".{func.attr}({k.arg}=...)" for k in node.keywords if k.arg in STATUS_FIELDS]
    field = node.args[1] if len(node.args) > 1 else None
    if isinstance(func, ast.Name) and func.id == "setattr" and isinstance(field, ast.Constant):
        return [f"setattr(..., {field.value!r})"] if field.value in STATUS_FIELDS else []
    return []


def test_no_status_field_is_assigned_outside_the_transition_helper():
    offenders = []
    for path in _sources():
        rel = _rel(path)
        # The kernel is the helper; loyalty/exceptions.py sets an error class's HTTP ``status``.
        if rel.startswith("loyalty/kernel/") or rel == "loyalty/exceptions.py":
            continue
        for node in ast.walk(_tree(path)):
            offenders += [f"{rel}:{node.lineno} {w}" for w in _status_writes(node, rel)]
    assert offenders == []


def _service_modules() -> list[str]:
    return [_rel(p)[:-3].replace("/", ".") for p in _sources(services_only=True) if p.name != "__init__.py"]


def test_every_public_service_function_is_an_outer_service_or_says_what_it_is():
    undecided = []
    for name in _service_modules():
        module = importlib.import_module(name)
        for attr, func in vars(module).items():
            if attr.startswith("_") or not inspect.isfunction(func) or func.__module__ != name:
                continue
            if getattr(func, "__outer_service__", False):
                continue
            if not any(phrase in (func.__doc__ or "") for phrase in NOT_OUTER):
                undecided.append(f"{name}.{attr}")
    assert undecided == []


def test_an_outer_service_says_so_in_its_code():
    """@outer_service is the marker; a plain @transaction.atomic on a service function is not."""
    plain = []
    for path in _sources(services_only=True):
        for node in _tree(path).body:
            if isinstance(node, ast.FunctionDef):
                plain += [f"{_rel(path)}:{node.name}" for d in node.decorator_list if "atomic" in ast.unparse(d)]
    assert plain == []


# Who may open a unit of work (docs/architecture.md, Transactions): the Idempotency-Key wrapper,
# seed_demo and the CSV imports. Anywhere else, each service starts its own transaction.
UNIT_OF_WORK_ALLOWED = {"loyalty/api/base.py", "loyalty/management/commands/seed_demo.py", "redemptions/resources.py"}
# The API tooling's own short transaction (the Idempotency-Key claim, a savepoint for its
# IntegrityError); it wraps no service.
VIEW_ATOMIC_ALLOWED = {"loyalty/api/base.py"}


def test_unit_of_work_is_opened_only_by_the_callers_named_for_it():
    opened = []
    for path in _sources():
        rel = _rel(path)
        if rel.startswith("loyalty/kernel/") or rel in UNIT_OF_WORK_ALLOWED:
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == "unit_of_work":
                opened.append(f"{rel}:{node.lineno}")
    assert opened == []


def test_no_view_opens_a_transaction():
    """Admin and API code call services, which start the transaction (views, actions, serializers)."""
    opened = []
    for path in _sources():
        rel = _rel(path)
        parts = rel.split("/")
        if rel in VIEW_ATOMIC_ALLOWED or not (
            {"admin", "api"} & set(parts[1:-1]) or parts[-1] in ("admin.py", "views.py")
        ):
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and node.attr == "atomic":
                opened.append(f"{rel}:{node.lineno}")
    assert opened == []


def test_no_services_module_is_over_450_lines():
    long = {_rel(p): n for p in _sources(services_only=True) if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}


def test_each_role_map_names_only_its_own_apps_permissions():
    for app in APPS:
        path = ROOT / app / "roles.py"
        named = {
            node.value.split(".")[0]
            for node in ast.walk(_tree(path))
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.fullmatch(r"[a-z_*]+\.[a-z_*]+", node.value)
        }
        assert named <= {app, "*"}, (app, named)


def test_the_role_sync_collects_every_apps_declaration():
    from loyalty import roles

    merged = roles.role_permissions()
    assert "promotions.generate_codes" in merged[roles.CAMPAIGN_MANAGER]
    assert "redemptions.approve_rollback" in merged[roles.APPROVER]
    assert "retro.add_retroclaim" in merged[roles.INTEGRATION]


def _raise_site_codes(domain: set[str]) -> tuple[list[str], set[str]]:
    """(string literals passed as ``code=`` to a domain error, constant names passed so)."""
    literals, names = [], set()
    for path in _sources():
        for node in ast.walk(_tree(path)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in domain):
                continue
            for k in node.keywords:
                if k.arg == "code" and isinstance(k.value, ast.Constant):
                    literals.append(f"{_rel(path)}:{node.lineno} {node.func.id}(code={k.value.value!r})")
                elif k.arg == "code" and isinstance(k.value, ast.Name):
                    names.add(k.value.id)
    return literals, names


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_every_error_code_raised_is_a_registered_constant():
    for app in APPS:
        importlib.import_module(f"{app}.exceptions")
    # Only the domain errors (DRF's ValidationError and model lookups such as code="points" are not).
    literals, names = _raise_site_codes({cls.__name__ for cls in _all_subclasses(DomainError)} | {"DomainError"})
    assert literals == []
    assert names, "the scan found no raise site with a code constant"
    constants = {
        attr: value
        for app in APPS
        for attr, value in vars(importlib.import_module(f"{app}.exceptions")).items()
        if attr.isupper() and isinstance(value, str)
    }
    assert {n for n in names if n not in constants} == set()
    assert {constants[n] for n in names} <= set(ERROR_CODES)
    assert {cls.code for cls in _all_subclasses(DomainError)} <= set(ERROR_CODES)


def test_every_registered_error_code_is_documented_in_api_md():
    for app in APPS:
        importlib.import_module(f"{app}.exceptions")
    documented = set(re.findall(r"`([a-z_]+)`", (ROOT / "docs" / "api.md").read_text().split("## Error codes", 1)[1]))
    assert set(ERROR_CODES) - documented == set()


@pytest.mark.django_db
def test_a_catalogue_select_reads_its_options_in_one_plain_query(metric, tiers):
    """No server-side cursor (DECLARE/FETCH/CLOSE on PostgreSQL) for a select of a few rows."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from loyalty.forms import ChangeTierForm

    with CaptureQueriesContext(connection) as ctx:
        html = str(ChangeTierForm()["tier"])
    assert [q["sql"].split()[0] for q in ctx.captured_queries] == ["SELECT"]
    assert all(f">{tier}</option>" in html for tier in tiers.values())
