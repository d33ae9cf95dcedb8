"""The permissions of the redemptions app each role gets (collected by ``loyalty.roles``)."""

from loyalty.roles import APPROVER, CAMPAIGN_MANAGER, INTEGRATION, SUPPORT_AGENT

READ = [
    "redemptions.view_redemption",
    "redemptions.view_award",
    "redemptions.view_rewardcodepool",
    "redemptions.view_rollback",
]
WORK = [
    "redemptions.add_redemption",
    "redemptions.change_redemption",
    "redemptions.award_reward",
    "redemptions.change_fulfillment",
    "redemptions.add_rollback",
]

PERMISSIONS: dict[str, list[str]] = {
    SUPPORT_AGENT: [*READ, *WORK],
    APPROVER: [
        *READ,
        "redemptions.approve_redemption",
        "redemptions.approve_rollback",
        "redemptions.change_fulfillment",
    ],
    CAMPAIGN_MANAGER: [
        *READ,
        "redemptions.import_redemptions",
        "redemptions.add_rewardcodepool",
        "redemptions.change_rewardcodepool",
    ],
    INTEGRATION: [*READ, *WORK],
}
