"""The permissions of the promotions app each role gets (collected by ``loyalty.roles``)."""

from loyalty.roles import APPROVER, CAMPAIGN_MANAGER, INTEGRATION, SUPPORT_AGENT

READ = [
    "promotions.view_campaign",
    "promotions.view_codebatch",
    "promotions.view_code",
    "promotions.view_coderedemption",
    "promotions.view_codeevent",
    "promotions.view_abusesignal",
]

PERMISSIONS: dict[str, list[str]] = {
    SUPPORT_AGENT: [*READ, "promotions.change_coderedemption", "promotions.void_code"],
    APPROVER: READ,
    CAMPAIGN_MANAGER: [
        *READ,
        "promotions.add_campaign",
        "promotions.change_campaign",
        "promotions.add_codebatch",
        "promotions.generate_codes",
        "promotions.void_code",
        "promotions.change_coderedemption",
        "promotions.change_abusesignal",
        "promotions.view_campaignmemberusage",
        "promotions.add_coderedemption",
    ],
    INTEGRATION: [
        "promotions.view_campaign",
        "promotions.view_code",
        "promotions.view_coderedemption",
        "promotions.add_coderedemption",
        "promotions.change_coderedemption",
    ],
}
