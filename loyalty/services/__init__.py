"""Every state change of the loyalty core. Admin, API, tasks and commands all call these."""

from ..exceptions import ApiKeyRejected
from .access import (
    NewApiKey,
    authenticate_api_key,
    create_api_key,
    revoke_api_key,
    unlock_sign_in,
)
from .core import (
    MAX_POINTS_PER_ENTRY,
    activate_pending_points,
    adjust_points,
    credit_points,
    credit_points_in_transaction,
    debit_points,
    debit_points_in_transaction,
    expire_points,
    lock_balance,
    lock_balances,
)
from .earning import (
    earn_for_transaction,
    kept_amount,
    preview_earning,
    record_transaction,
    return_transaction,
)
from .members import change_tier, change_tier_in_transaction, enroll_member, record_tier_interval, update_member
from .outbox import resend_outbox_messages
from .program import update_program_settings
from .qualification import period_bounds, requalify_tiers, track_purchase
from .reversals import (
    restore_debit,
    restore_debit_in_transaction,
    reverse_earning,
    reverse_earning_in_transaction,
)
from .rule_sets import (
    create_rule_set,
    create_rule_set_in_transaction,
    new_rule_set_version,
    publish_rule_set,
    retire_rule_set,
    update_rule_set,
)

__all__ = [
    "create_rule_set_in_transaction",
    "reverse_earning_in_transaction",
    "restore_debit_in_transaction",
    "change_tier_in_transaction",
    "debit_points_in_transaction",
    "credit_points_in_transaction",
    "ApiKeyRejected",
    "NewApiKey",
    "authenticate_api_key",
    "create_api_key",
    "revoke_api_key",
    "MAX_POINTS_PER_ENTRY",
    "activate_pending_points",
    "adjust_points",
    "change_tier",
    "create_rule_set",
    "credit_points",
    "debit_points",
    "earn_for_transaction",
    "enroll_member",
    "expire_points",
    "kept_amount",
    "lock_balance",
    "lock_balances",
    "new_rule_set_version",
    "period_bounds",
    "preview_earning",
    "publish_rule_set",
    "record_tier_interval",
    "record_transaction",
    "requalify_tiers",
    "resend_outbox_messages",
    "retire_rule_set",
    "return_transaction",
    "restore_debit",
    "reverse_earning",
    "track_purchase",
    "update_program_settings",
    "update_member",
    "update_rule_set",
    "unlock_sign_in",
]
