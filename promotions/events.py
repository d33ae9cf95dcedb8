"""How promotions objects appear in events (loyalty.events): as their API endpoints show them."""

from loyalty.events import register_presenter


def register() -> None:
    from .api.serializers import CodeBatchOut, CodeOut, CodeRedemptionOut
    from .models import Code, CodeBatch, CodeRedemption

    register_presenter(Code, lambda obj: CodeOut(obj).data)  # GET /codes/{code}/
    register_presenter(CodeBatch, lambda obj: CodeBatchOut(obj).data)  # GET /code-batches/{id}/
    register_presenter(CodeRedemption, lambda obj: CodeRedemptionOut(obj).data)  # POST /codes/redeem
