"""How redemptions objects appear in events (loyalty.events): as their GET endpoints show them."""

from loyalty.events import register_presenter


def register() -> None:
    from .api.redemptions import RedemptionOut
    from .api.rollbacks import RollbackOut
    from .models import Redemption, Rollback

    register_presenter(Redemption, lambda obj: RedemptionOut(obj).data)  # GET /redemptions/{id}/
    register_presenter(Rollback, lambda obj: RollbackOut(obj).data)  # GET /rollbacks/{id}/
