"""Every state change of redemptions, awards and rollbacks (admin, API, tasks and imports call these).

- ``responses``: redeem, award, approve / reject / return, status, award status, fulfillment, expiry.
- ``rollbacks``: request, approve and reject rollbacks.
- ``refunds``: the one gate through which anything a redemption took comes back, and its rule table.
- ``imports``: legacy redemptions, recorded without moving points.
"""

from ..exceptions import OutOfStock, RollbackApprovalRequired, RollbackPending, RollbackWindowClosed
from .common import MAX_QUANTITY, lock_redemption
from .imports import import_legacy_redemption
from .refunds import (
    PATH_RULES,
    Check,
    Path,
    check_may_move,
    give_back,
)
from .responses import (
    approve_redemption,
    award_reward,
    change_award_status,
    change_fulfillment,
    change_status,
    expire_awards,
    redeem_reward,
    reject_redemption,
    return_redemption,
)
from .rewards import save_reward
from .rollbacks import approve_rollback, reject_rollback, rollback_redemption

__all__ = [
    "save_reward",
    "MAX_QUANTITY",
    "PATH_RULES",
    "Check",
    "OutOfStock",
    "Path",
    "RollbackApprovalRequired",
    "RollbackPending",
    "RollbackWindowClosed",
    "approve_redemption",
    "approve_rollback",
    "award_reward",
    "change_award_status",
    "change_fulfillment",
    "change_status",
    "check_may_move",
    "expire_awards",
    "give_back",
    "import_legacy_redemption",
    "lock_redemption",
    "redeem_reward",
    "reject_redemption",
    "reject_rollback",
    "return_redemption",
    "rollback_redemption",
]
