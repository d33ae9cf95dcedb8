"""The event types of API.md ("Events out"). Add a type here and to API.md together."""

EVENT_TYPES = frozenset(
    {
        "member.enrolled",
        "member.tier_changed",
        "points.credited",
        "points.debited",
        "points.expiring",
        "redemption.created",
        "redemption.status_changed",
        "redemption.approval_changed",
        "redemption.fulfillment_changed",
        "rollback.requested",
        "rollback.executed",
        "rollback.rejected",
        "retro_claim.submitted",
        "retro_claim.processed",
        "code.redeemed",
        "code.voided",
        "code_batch.completed",
    }
)

# Member messages that need ``marketing_opt_in`` (API.md "Member notifications"); every other
# template is about the member's own redemptions, rollbacks or claims and goes regardless.
MARKETING_TEMPLATES = frozenset({"code_assigned", "points_expiring"})
