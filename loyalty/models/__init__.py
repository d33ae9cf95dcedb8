from .catalog import Reward
from .idempotency import IdempotencyRecord
from .ledger import LedgerEntry, LedgerImmutableError, LotConsumption, PointBalance, PointLot
from .members import Member, Metric, Segment, Tier, TierMembership

__all__ = [
    "IdempotencyRecord",
    "LedgerEntry",
    "LedgerImmutableError",
    "LotConsumption",
    "Member",
    "Metric",
    "PointBalance",
    "PointLot",
    "Reward",
    "Segment",
    "Tier",
    "TierMembership",
]
