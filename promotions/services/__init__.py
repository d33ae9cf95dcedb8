"""Every state change of campaigns and codes, by concern; import them from here."""

from promotions.exceptions import CodesRejected

from .abuse_signals import mark_signal_reviewed, purge_code_validations
from .campaigns import (
    CAMPAIGN_FIELDS,
    MAX_ORDER_AMOUNT,
    change_campaign_status,
    change_campaign_status_in_transaction,
    create_campaign,
    update_campaign,
)
from .codes import (
    GENERATION_CHUNK,
    create_code_batch,
    create_named_code,
    expire_codes,
    generate_code_batch,
    record_code_event,
    void_code,
    void_code_for_system,
)
from .copy_codes import insert_codes
from .redemption import (
    MAX_CODES_PER_REQUEST,
    CodeRequest,
    clean_request,
    redeem_codes,
    rollback_code_redemption,
    validate_codes,
)

__all__ = [
    "CAMPAIGN_FIELDS",
    "GENERATION_CHUNK",
    "MAX_CODES_PER_REQUEST",
    "MAX_ORDER_AMOUNT",
    "CodeRequest",
    "CodesRejected",
    "change_campaign_status",
    "change_campaign_status_in_transaction",
    "clean_request",
    "create_campaign",
    "create_code_batch",
    "create_named_code",
    "expire_codes",
    "generate_code_batch",
    "insert_codes",
    "mark_signal_reviewed",
    "purge_code_validations",
    "redeem_codes",
    "record_code_event",
    "rollback_code_redemption",
    "update_campaign",
    "validate_codes",
    "void_code",
    "void_code_for_system",
]
