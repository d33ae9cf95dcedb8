from django.urls import path

from . import campaigns, codes

urlpatterns = [
    path("campaigns/", campaigns.CampaignList.as_view(), name="api-campaigns"),
    path("campaigns/<int:pk>/", campaigns.CampaignDetail.as_view(), name="api-campaign"),
    path("campaigns/<int:pk>/code-batches/", campaigns.CampaignCodeBatches.as_view(), name="api-campaign-code-batches"),
    path("campaigns/<int:pk>/codes/", campaigns.CampaignNamedCodes.as_view(), name="api-campaign-codes"),
    path("code-batches/<int:pk>/", campaigns.CodeBatchDetail.as_view(), name="api-code-batch"),
    path("codes/", codes.CodeList.as_view(), name="api-codes"),
    path("codes/validate", codes.CodesValidate.as_view(), name="api-codes-validate"),
    path("codes/redeem", codes.CodesRedeem.as_view(), name="api-codes-redeem"),
    # <path:...> so that a code printed with "/" separators (percent-encoded or not) is still found.
    path("codes/<path:code>/qr.svg", codes.CodeQrSvg.as_view(), name="api-code-qr-svg"),
    path("codes/<path:code>/qr.png", codes.CodeQrPng.as_view(), name="api-code-qr-png"),
    path("codes/<path:code>/", codes.CodeDetail.as_view(), name="api-code"),
    path("code-redemptions/<int:pk>/rollback", codes.CodeRedemptionRollback.as_view(), name="api-code-rollback"),
]
