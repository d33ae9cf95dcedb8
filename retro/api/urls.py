from django.urls import path

from . import views

urlpatterns = [
    path("retro-claims/", views.RetroClaimList.as_view(), name="api-retro-claims"),
    path("retro-claims/<int:pk>/", views.RetroClaimDetail.as_view(), name="api-retro-claim"),
    path("retro-claims/<int:pk>/approve", views.RetroClaimApprove.as_view(), name="api-retro-claim-approve"),
    path("retro-claims/<int:pk>/reject", views.RetroClaimReject.as_view(), name="api-retro-claim-reject"),
]
