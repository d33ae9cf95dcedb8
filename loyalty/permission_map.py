"""Who may do what, worked out from the code, for docs/roles.md and the permission-matrix test.

Three inputs, all in the code: the role map (``loyalty.roles.ROLE_PERMISSIONS``), the
permissions each API view declares (``has_perms(...)`` or ``read_write(...)``), and each admin
screen's actions (the list's action menu, and the ``page_actions`` its ModelAdmin and the member
panels declare). ``manage.py roles_doc`` writes the tables into docs/roles.md;
tests/test_permission_matrix.py checks that the file is current (so a role cannot gain or lose a
permission without the doc changing) and that the running app answers every role exactly as the
tables say.

Nothing here touches the database: a role's permissions are expanded from the model registry
the way ``sync_role_permissions`` finds them in the permission table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.apps import apps
from django.contrib import admin
from django.contrib.auth.management import _get_all_permissions
from django.test import RequestFactory

from . import roles

ANONYMOUS = "Anonymous"
NO = "—"
YES = "✓"
START = "<!-- permission-matrix:start (manage.py roles_doc writes this part; do not edit by hand) -->"
END = "<!-- permission-matrix:end -->"


@cache
def all_permissions() -> frozenset[str]:
    perms = set()
    for model in apps.get_models():
        opts = model._meta
        perms |= {f"{opts.app_label}.{codename}" for codename, _ in _get_all_permissions(opts)}
    return frozenset(perms)


def role_permissions(role: str) -> frozenset[str]:
    """Every permission the role's group holds after ``sync_role_permissions``."""
    granted = set()
    for entry in roles.ROLE_PERMISSIONS[role]:
        if entry == "*.view_*":
            granted |= {p for p in all_permissions() if p.split(".", 1)[1].startswith("view_")}
        elif entry in all_permissions():
            granted.add(entry)
    return frozenset(granted)


class RoleUser:
    """A stand-in user holding a role's permissions (no database), to ask the admin what it offers."""

    is_active = True
    is_authenticated = True
    is_anonymous = False
    is_superuser = False
    pk = id = None

    def __init__(self, role: str):
        self.role = role
        self.perms = role_permissions(role)
        self.is_staff = role in roles.STAFF_ROLES
        self.username = f"role:{role}"

    def has_perm(self, perm, obj=None) -> bool:
        return perm in self.perms

    def has_perms(self, perm_list, obj=None) -> bool:
        return all(p in self.perms for p in perm_list)

    def has_module_perms(self, app_label) -> bool:
        return any(p.startswith(f"{app_label}.") for p in self.perms)

    def get_username(self) -> str:
        return self.username


class _AskedUser(RoleUser):
    """Grants everything and remembers what was asked: the permissions a check consults."""

    def __init__(self):
        self.asked: list[str] = []
        self.is_staff = True
        self.username = "asked"

    def has_perm(self, perm, obj=None) -> bool:
        self.asked.append(perm)
        return True

    def has_perms(self, perm_list, obj=None) -> bool:
        return all(self.has_perm(p) for p in perm_list)


def _request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


# --- the API ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    perms: tuple[str, ...]

    def allows(self, role: str) -> bool:
        return role != ANONYMOUS and set(self.perms) <= role_permissions(role)


def view_perms(callback, method: str) -> tuple[str, ...]:
    """The permissions a view's permission classes require for ``method`` (``callback`` is what
    ``as_view()`` returned: ``as_view(permission_classes=...)`` counts)."""
    from loyalty.api.base import ReadWritePerms

    view_cls = callback.cls
    needed: list[str] = []
    for permission_class in callback.initkwargs.get("permission_classes", view_cls.permission_classes):
        if hasattr(permission_class, "required"):  # has_perms(...)
            needed += permission_class.required
        elif issubclass(permission_class, ReadWritePerms):
            needed += permission_class.perms_for(method)
        else:
            raise ValueError(
                f"{view_cls.__name__}: declare its permissions with has_perms(...) or read_write(...) "
                f"(not {permission_class.__name__}), so the permission matrix can read them"
            )
    return tuple(dict.fromkeys(needed))


def api_endpoints() -> list[Endpoint]:
    from drf_spectacular.generators import EndpointEnumerator

    endpoints = []
    for path, _regex, method, callback in EndpointEnumerator().get_api_endpoints():
        endpoints.append(Endpoint(method, path, view_perms(callback, method)))
    return sorted(endpoints, key=lambda e: (e.path, e.method))


# --- the admin ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminAction:
    screen: str
    label: str
    kind: str  # "bulk" (the list's action menu) or "page" (a button or form on a page)
    name: str  # the action's name, or the page action's URL name
    perms: tuple[str, ...]
    allowed: frozenset[str]  # the roles it is offered to

    def allows(self, role: str) -> bool:
        return role in self.allowed


def _screen(model) -> str:
    name = str(model._meta.verbose_name_plural)
    return name[:1].upper() + name[1:]


def page_actions() -> list[tuple[type, object]]:
    """(model, PageAction) for every declared page action, the member panels' included."""
    from loyalty.admin.panels import member_panels
    from loyalty.models import Member

    found = []
    for model, model_admin in admin.site._registry.items():
        found += [(model, action) for action in getattr(model_admin, "page_actions", ())]
    for panel in member_panels():
        found += [(Member, action) for action in panel.actions]
    return found


def admin_actions() -> list[AdminAction]:
    out = []
    staff = [r for r in roles.ROLES if r in roles.STAFF_ROLES]
    for model, model_admin in admin.site._registry.items():
        offered = {}
        for role in staff:
            request = _request(RoleUser(role))
            if model_admin.has_view_or_change_permission(request):
                offered[role] = set(model_admin.get_actions(request))
        anyone = set(model_admin.get_actions(_request(_AskedUser())))  # what a user with every permission gets
        for func, name, description in model_admin._get_base_actions():
            if name not in anyone:
                continue  # never offered (delete on read-only screens)
            asked = _AskedUser()
            request = _request(asked)
            for permission in getattr(func, "allowed_permissions", ()):
                getattr(model_admin, f"has_{permission}_permission")(request)
            out.append(
                AdminAction(
                    screen=_screen(model),
                    label=str(description) % {"verbose_name_plural": model._meta.verbose_name_plural},
                    kind="bulk",
                    name=name,
                    perms=tuple(dict.fromkeys(asked.asked)),
                    allowed=frozenset(role for role, names in offered.items() if name in names),
                )
            )
    for model, action in page_actions():
        allowed = {r for r in staff if set(action.perms) <= role_permissions(r)}
        out.append(
            AdminAction(
                screen=_screen(model),
                label=action.label,
                kind="page",
                name=action.url_name,
                perms=action.perms,
                allowed=frozenset(allowed),
            )
        )
    return sorted(out, key=lambda a: (a.screen, a.kind, a.label))


# --- docs/roles.md ------------------------------------------------------------------------------


def _cells(allows) -> str:
    return " | ".join(YES if allows(role) else NO for role in roles.ROLES)


def _perms(perms: tuple[str, ...]) -> str:
    return ", ".join(f"`{p}`" for p in perms) if perms else "(signed in)"


def _section(title: str, intro: str, columns: list[str], rows: list[str]) -> list[str]:
    """One generated table: its heading and introduction, then a column per role after ``columns``."""
    header = " | ".join([*columns, *roles.ROLES])
    rule = "|" + "---|" * (len(columns) + len(roles.ROLES))
    return ["", f"### {title}", "", intro, "", f"| {header} |", rule, *rows]


def render() -> str:
    """The generated part of docs/roles.md: the API table and the admin actions table."""
    api = _section(
        "API: every endpoint, every role",
        "What the view checks before anything else (the service checks the same again). "
        f"{YES} the role may call it; {NO} the answer is 403 `permission_denied`. Anonymous callers "
        "get 401 everywhere.",
        ["Method", "Path", "Needs"],
        [f"| {e.method} | `{e.path}` | {_perms(e.perms)} | {_cells(e.allows)} |" for e in api_endpoints()],
    )
    admin = _section(
        "Admin: every action, every role",
        "*Bulk* actions are in a list's action menu (a role without the permission does not see them); "
        "*page* actions are buttons and forms on a page (a role without the permission gets 403). "
        "Integration users cannot sign in to the admin. Actions no role has are for superusers.",
        ["Screen", "Action", "Kind", "Needs"],
        [
            f"| {a.screen} | {a.label} | {a.kind} | {_perms(a.perms)} | {_cells(a.allows)} |"
            for a in admin_actions()
        ],
    )
    return "\n".join([START, *api, *admin, "", END])


def replace_generated(text: str) -> str:
    """``text`` (docs/roles.md) with its generated part replaced by ``render()``."""
    if START not in text or END not in text:
        raise ValueError("docs/roles.md has no permission-matrix markers")
    before, rest = text.split(START, 1)
    _old, after = rest.split(END, 1)
    return before + render() + after


def parse_tables(text: str) -> dict[str, dict[tuple[str, ...], dict[str, bool]]]:
    """The generated tables of docs/roles.md as {"api": {(method, path): {role: allowed}},
    "admin": {(screen, action, kind): {role: allowed}}}: what the test checks the app against."""
    section = text.split(START, 1)[1].split(END, 1)[0]
    tables: dict[str, dict] = {"api": {}, "admin": {}}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 + len(roles.ROLES) and cells[0] in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            key = (cells[0], cells[1].strip("`"))
            tables["api"][key] = dict(zip(roles.ROLES, (c == YES for c in cells[3:]), strict=True))
        elif len(cells) == 4 + len(roles.ROLES) and cells[2] in ("bulk", "page"):
            key = (cells[0], cells[1], cells[2])
            tables["admin"][key] = dict(zip(roles.ROLES, (c == YES for c in cells[4:]), strict=True))
    return tables
