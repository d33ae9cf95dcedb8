from django.urls import path

from . import redemptions, rewards, rollbacks

urlpatterns = [
    path("rewards/", rewards.RewardList.as_view(), name="api-rewards"),
    path("rewards/<str:external_id>/", rewards.RewardDetail.as_view(), name="api-reward"),
    path("redemptions/", redemptions.RedemptionList.as_view(), name="api-redemptions"),
    path("redemptions/<int:pk>/", redemptions.RedemptionDetail.as_view(), name="api-redemption"),
    path("redemptions/<int:pk>/approve", redemptions.RedemptionApprove.as_view(), name="api-redemption-approve"),
    path("redemptions/<int:pk>/reject", redemptions.RedemptionReject.as_view(), name="api-redemption-reject"),
    path("redemptions/<int:pk>/return", redemptions.RedemptionReturn.as_view(), name="api-redemption-return"),
    path("redemptions/<int:pk>/status", redemptions.RedemptionStatus.as_view(), name="api-redemption-status"),
    path(
        "redemptions/<int:pk>/award-status",
        redemptions.RedemptionAwardStatus.as_view(),
        name="api-redemption-award-status",
    ),
    path(
        "redemptions/<int:pk>/fulfillment",
        redemptions.RedemptionFulfillment.as_view(),
        name="api-redemption-fulfillment",
    ),
    path("redemptions/<int:pk>/rollback", rollbacks.RedemptionRollback.as_view(), name="api-redemption-rollback"),
    path("awards/", redemptions.AwardCreate.as_view(), name="api-awards"),
    path("rollbacks/", rollbacks.RollbackList.as_view(), name="api-rollbacks"),
    path("rollbacks/<int:pk>/", rollbacks.RollbackDetail.as_view(), name="api-rollback"),
    path("rollbacks/<int:pk>/approve", rollbacks.RollbackApprove.as_view(), name="api-rollback-approve"),
    path("rollbacks/<int:pk>/reject", rollbacks.RollbackReject.as_view(), name="api-rollback-reject"),
]
