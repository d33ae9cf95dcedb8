"""Roles, and the role → permission map collected from every app.

Each app declares the permissions its roles get next to its models, in ``<app>/roles.py``::

    PERMISSIONS = {SUPPORT_AGENT: ["promotions.view_code", ...], ...}

naming only its own permissions; ``role_permissions()`` (and ``ROLE_PERMISSIONS``) merges them in
INSTALLED_APPS order. Groups are created by a data migration; permissions are attached after every
migrate (post_migrate), so an app added later extends a role in its own ``roles.py``.

Entries are "app_label.codename"; view/add/change/delete are Django's model permissions.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import Any

SUPPORT_AGENT = "Support agent"
APPROVER = "Approver"
CAMPAIGN_MANAGER = "Campaign manager"
AUDITOR = "Auditor"
INTEGRATION = "Integration"

ROLES = [SUPPORT_AGENT, APPROVER, CAMPAIGN_MANAGER, AUDITOR, INTEGRATION]

_LOYALTY_READ = [
    "loyalty.view_member",
    "loyalty.view_metric",
    "loyalty.view_tier",
    "loyalty.view_tiermembership",
    "loyalty.view_segment",
    "loyalty.view_ledgerentry",
    "loyalty.view_pointbalance",
    "loyalty.view_pointlot",
    "loyalty.view_reward",
    "loyalty.view_transaction",
    "loyalty.view_transactionreturn",
    "loyalty.view_ruleset",
    "loyalty.view_rule",
    "loyalty.view_membertracker",
    "loyalty.view_programsettings",
    "loyalty.view_membernotification",
    "loyalty.view_event",
]
# Integrations manage their own webhook receivers (API.md "Events out").
_WEBHOOKS = [
    "loyalty.view_webhooksubscription",
    "loyalty.add_webhooksubscription",
    "loyalty.change_webhooksubscription",
    "loyalty.delete_webhooksubscription",
    "loyalty.rotate_webhooksubscription",
    "loyalty.view_webhookdelivery",
    "loyalty.replay_webhookdelivery",
]

# What support agents and the point-of-sale integration both do to members and purchases.
_MEMBER_WORK = [
    "loyalty.add_member",
    "loyalty.change_member",
    "loyalty.adjust_points",
    "loyalty.change_member_tier",
    "loyalty.add_transaction",
    "loyalty.add_transactionreturn",
]

PERMISSIONS: dict[str, list[str]] = {
    SUPPORT_AGENT: _LOYALTY_READ + _MEMBER_WORK,
    APPROVER: [*_LOYALTY_READ, "loyalty.view_reports"],
    CAMPAIGN_MANAGER: _LOYALTY_READ
    + [
        "loyalty.view_reports",
        "loyalty.add_metric",
        "loyalty.change_metric",
        "loyalty.add_tier",
        "loyalty.change_tier",
        "loyalty.add_reward",
        "loyalty.change_reward",
        "loyalty.add_ruleset",
        "loyalty.change_ruleset",
        "loyalty.publish_ruleset",
        "loyalty.add_rule",
        "loyalty.change_rule",
        "loyalty.delete_rule",
        "loyalty.change_programsettings",
        "loyalty.add_segment",
        "loyalty.change_segment",
    ],
    # Auditors see everything (every app's view_* permission, history included) and change nothing.
    AUDITOR: ["*.view_*"],
    INTEGRATION: [*_LOYALTY_READ, "loyalty.view_api_schema", *_MEMBER_WORK, *_WEBHOOKS],
}

# Roles whose members may sign in to the admin.
STAFF_ROLES = [SUPPORT_AGENT, APPROVER, CAMPAIGN_MANAGER, AUDITOR]


@cache
def role_permissions() -> dict[str, list[str]]:
    """Every role's permissions: each installed app's ``roles.PERMISSIONS``, in INSTALLED_APPS order
    (collected once, when first asked, after the app registry is ready)."""
    from django.apps import apps

    merged: dict[str, list[str]] = {role: [] for role in ROLES}
    for config in apps.get_app_configs():
        try:
            module = import_module(f"{config.name}.roles")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.roles":
                raise
            continue
        for role, entries in getattr(module, "PERMISSIONS", {}).items():
            if role not in merged:
                raise ValueError(f"{config.name}.roles names an unknown role {role!r}.")
            merged[role].extend(e for e in entries if e not in merged[role])
    return merged


def __getattr__(name: str) -> Any:
    if name == "ROLE_PERMISSIONS":  # kept for old readers: the merged map
        return role_permissions()
    raise AttributeError(name)


def sync_role_permissions(**kwargs) -> None:
    """Attach each role's permissions to its group (idempotent; missing permissions are skipped)."""
    from django.contrib.auth.models import Group, Permission

    for role, wanted in role_permissions().items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = []
        for entry in wanted:
            app_label, codename = entry.split(".", 1)
            qs = Permission.objects.select_related("content_type")
            if app_label == "*" and codename == "view_*":
                perms.extend(qs.filter(codename__startswith="view_"))
                continue
            perms.extend(qs.filter(content_type__app_label=app_label, codename=codename))
        group.permissions.set(perms)
