"""The v1 API router: each app contributes its own urls module."""

from django.urls import include, path

urlpatterns = [
    path("", include("loyalty.api.urls")),
    path("", include("retro.api.urls")),
    path("", include("promotions.api.urls")),
    path("", include("redemptions.api.urls")),
]
