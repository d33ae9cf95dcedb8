"""Role → permission map. Groups are created by a data migration; permissions are attached after
every migrate (post_migrate), so apps added later extend a role by editing this file only.

Entries are "app_label.codename"; view/add/change/delete are Django's model permissions.
"""

from __future__ import annotations

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

_PROMOTIONS_READ = [
    "promotions.view_campaign",
    "promotions.view_codebatch",
    "promotions.view_code",
    "promotions.view_coderedemption",
    "promotions.view_codeevent",
    "promotions.view_abusesignal",
]

_REDEMPTIONS_READ = [
    "redemptions.view_redemption",
    "redemptions.view_award",
    "redemptions.view_rewardcodepool",
    "redemptions.view_rollback",
]
_REDEMPTIONS_WORK = [
    "redemptions.add_redemption",
    "redemptions.change_redemption",
    "redemptions.award_reward",
    "redemptions.change_fulfillment",
    "redemptions.add_rollback",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    SUPPORT_AGENT: _LOYALTY_READ
    + [
        "loyalty.add_member",
        "loyalty.change_member",
        "loyalty.adjust_points",
        "loyalty.change_member_tier",
        "loyalty.add_transaction",
        "loyalty.add_transactionreturn",
        "retro.view_retroclaim",
        "retro.add_retroclaim",
        *_PROMOTIONS_READ,
        "promotions.change_coderedemption",
        "promotions.void_code",
        *_REDEMPTIONS_READ,
        *_REDEMPTIONS_WORK,
    ],
    APPROVER: _LOYALTY_READ
    + ["retro.view_retroclaim", "retro.approve_retroclaim"]
    + _PROMOTIONS_READ
    + _REDEMPTIONS_READ
    + ["redemptions.approve_redemption", "redemptions.approve_rollback", "redemptions.change_fulfillment"]
    + ["loyalty.view_reports"],
    CAMPAIGN_MANAGER: _LOYALTY_READ
    + [
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
        "loyalty.view_reports",
        *_PROMOTIONS_READ,
        "promotions.add_campaign",
        "promotions.change_campaign",
        "promotions.add_codebatch",
        "promotions.generate_codes",
        "promotions.void_code",
        "promotions.change_coderedemption",
        "promotions.change_abusesignal",
        "promotions.view_campaignmemberusage",
        "promotions.add_coderedemption",
        *_REDEMPTIONS_READ,
        "redemptions.import_redemptions",
        "redemptions.add_rewardcodepool",
        "redemptions.change_rewardcodepool",
    ],
    # Auditors see everything (every app's view_* permission, history included) and change nothing.
    AUDITOR: ["*.view_*"],
    INTEGRATION: _LOYALTY_READ
    + [
        "loyalty.view_api_schema",
        "loyalty.add_member",
        "loyalty.change_member",
        "loyalty.adjust_points",
        "loyalty.change_member_tier",
        "loyalty.add_transaction",
        "loyalty.add_transactionreturn",
        "retro.view_retroclaim",
        "retro.add_retroclaim",
        "promotions.view_campaign",
        "promotions.view_code",
        "promotions.view_coderedemption",
        "promotions.add_coderedemption",
        "promotions.change_coderedemption",
        *_REDEMPTIONS_READ,
        *_REDEMPTIONS_WORK,
        *_WEBHOOKS,
    ],
}

# Roles whose members may sign in to the admin.
STAFF_ROLES = [SUPPORT_AGENT, APPROVER, CAMPAIGN_MANAGER, AUDITOR]


def sync_role_permissions(**kwargs) -> None:
    """Attach each role's permissions to its group (idempotent; missing permissions are skipped)."""
    from django.contrib.auth.models import Group, Permission

    for role, wanted in ROLE_PERMISSIONS.items():
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
