from .access import ApiKey
from .catalog import Reward
from .earning import (
    MemberTracker,
    ProgramSettings,
    Rule,
    RuleSet,
    RuleSetImmutableError,
    Transaction,
    TransactionReturn,
)
from .idempotency import IdempotencyRecord
from .ledger import LedgerEntry, LedgerImmutableError, LotConsumption, PointBalance, PointLot
from .members import Member, Metric, Segment, Tier, TierMembership
from .outbox import OutboxMessage

__all__ = [
    "ApiKey",
    "IdempotencyRecord",
    "LedgerEntry",
    "LedgerImmutableError",
    "LotConsumption",
    "Member",
    "MemberTracker",
    "ProgramSettings",
    "Rule",
    "RuleSet",
    "RuleSetImmutableError",
    "Transaction",
    "TransactionReturn",
    "Metric",
    "OutboxMessage",
    "PointBalance",
    "PointLot",
    "Reward",
    "Segment",
    "Tier",
    "TierMembership",
]
