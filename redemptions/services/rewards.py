"""The rewards catalogue: a reward with its eligible tiers and, for a discount_code reward, the
campaign whose codes it issues (only this app may know both)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from loyalty.exceptions import AlreadyExists
from loyalty.kernel import Actor, outer_service, require_perm, save_with_history
from loyalty.models import Reward

from ..models import RewardCodePool

UNSET: Any = "unset"


@outer_service
def save_reward(*, reward: Reward, data: dict[str, Any], actor: Actor, reason: str) -> Reward:
    """Create (an unsaved ``reward``) or change a reward: its fields, ``eligible_tiers`` and
    ``campaign`` (``None`` removes the code pool); 409 ``already_exists`` for a taken external_id."""
    require_perm(actor, "loyalty.add_reward" if reward._state.adding else "loyalty.change_reward")
    data = dict(data)
    tiers = data.pop("eligible_tiers", None)
    campaign = data.pop("campaign", UNSET)
    for key, value in data.items():
        setattr(reward, key, value)
    try:
        with transaction.atomic():
            save_with_history(reward, actor=actor, reason=reason)
            if tiers is not None:
                reward.eligible_tiers.set(tiers)
            if campaign is None:
                RewardCodePool.objects.filter(reward=reward).delete()
            elif campaign is not UNSET:
                RewardCodePool.objects.update_or_create(reward=reward, defaults={"campaign": campaign})
    except IntegrityError as exc:
        raise AlreadyExists(
            f"A reward with external_id {reward.external_id!r} already exists.",
            errors={"external_id": ["Already in use."]},
        ) from exc
    return reward
