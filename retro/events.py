"""How retro claims appear in events (loyalty.events): as GET /retro-claims/{id}/ shows them."""

from loyalty.events import register_presenter


def register() -> None:
    from .api.serializers import RetroClaimOut
    from .models import RetroClaim

    register_presenter(RetroClaim, lambda obj: RetroClaimOut(obj).data)
