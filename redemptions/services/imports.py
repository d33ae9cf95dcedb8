"""Legacy imports: redemptions made on another platform, recorded here without moving points."""

from __future__ import annotations

import datetime as dt

from loyalty.exceptions import InvalidInput
from loyalty.kernel import (
    Actor,
    check_whole_number,
    history_user,
    outer_service,
    require_perm,
    save_unique,
)
from loyalty.models import Member, Reward
from loyalty.services.insight import reopen_days

from ..models import Redemption
from .common import check_quantity


@outer_service
def import_legacy_redemption(
    *,
    member: Member,
    reward: Reward,
    quantity: int,
    points_spent: int,
    status: str,
    created_at: dt.datetime,
    external_ref: str,
    actor: Actor,
) -> Redemption:
    """Record a redemption made on a legacy platform, WITHOUT a ledger movement.

    The points were spent on the old platform (the migrated balance is already net of them), so no
    entry is written and no stock is taken; the row keeps ``external_ref`` (unique) and its original
    ``created_at``. Such redemptions are undone on the legacy platform, never rolled back here.
    """
    require_perm(actor, "redemptions.import_redemptions")
    external_ref = (external_ref or "").strip()
    if not external_ref or len(external_ref) > 64:
        raise InvalidInput("external_ref is required (at most 64 characters).", errors={"external_ref": ["Required."]})
    if status not in Redemption.Status.values:
        raise InvalidInput(
            f"Unknown status {status!r}; one of {', '.join(Redemption.Status.values)}.",
            errors={"status": ["Unknown status."]},
        )
    check_quantity(quantity)
    check_whole_number(
        points_spent,
        field="points_spent",
        detail="points_spent must not be negative.",
        error="Must be >= 0.",
        minimum=0,
    )
    imported = InvalidInput(
        f"external_ref {external_ref!r} was already imported.", errors={"external_ref": ["Already imported."]}
    )
    if Redemption.objects.filter(external_ref=external_ref).exists():
        raise imported
    redemption = Redemption(
        kind=Redemption.Kind.REDEMPTION,
        member=member,
        reward=reward,
        quantity=quantity,
        points_spent=points_spent,
        metric=reward.metric,
        status=status,
        channel=Redemption.Channel.IMPORT,
        external_ref=external_ref,
        stock_returned=True,  # no stock was taken here: never give any back
        created_by=history_user(actor),
    )
    # A concurrent import of the same reference fails on the unique external_ref.
    save_unique(
        redemption, actor=actor, reason=f"Imported from the legacy platform ({external_ref})", duplicate=imported
    )
    # created_at is auto_now_add: keep the legacy date on the row and its first history record.
    Redemption.objects.filter(pk=redemption.pk).update(created_at=created_at)
    redemption.history.filter(id=redemption.pk).update(created_at=created_at)
    redemption.created_at = created_at
    # A backdated row lands in a day the report's rollup may have closed: that day is computed again.
    reopen_days(created_at, created_at)
    return redemption
