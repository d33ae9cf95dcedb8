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
from .events import Event, MemberNotification, WebhookDelivery, WebhookSubscription
from .idempotency import IdempotencyRecord
from .insight import DailyFigure, InsightDay
from .ledger import LedgerEntry, LedgerImmutableError, LotConsumption, PointBalance, PointLot
from .members import Member, Metric, Segment, Tier, TierMembership
from .outbox import OutboxMessage

__all__ = [
    "ApiKey",
    "DailyFigure",
    "InsightDay",
    "Event",
    "IdempotencyRecord",
    "MemberNotification",
    "WebhookDelivery",
    "WebhookSubscription",
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
