from django.urls import path

from . import rewards

urlpatterns = [
    path("rewards/", rewards.RewardList.as_view(), name="api-rewards"),
    path("rewards/<str:external_id>/", rewards.RewardDetail.as_view(), name="api-reward"),
]
