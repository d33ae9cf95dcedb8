from django.urls import path

from . import earning

urlpatterns = [
    path("program/", earning.ProgramView.as_view(), name="api-program"),
    path("rule-sets/", earning.RuleSetList.as_view(), name="api-rule-sets"),
    path("rule-sets/<int:pk>/", earning.RuleSetDetail.as_view(), name="api-rule-set"),
    path("rule-sets/<int:pk>/publish", earning.RuleSetPublish.as_view(), name="api-rule-set-publish"),
    path("rule-sets/<int:pk>/new-version", earning.RuleSetNewVersion.as_view(), name="api-rule-set-new-version"),
    path("rule-sets/<int:pk>/retire", earning.RuleSetRetire.as_view(), name="api-rule-set-retire"),
    path("transactions/", earning.TransactionList.as_view(), name="api-transactions"),
    path("transactions/<str:external_id>/", earning.TransactionDetail.as_view(), name="api-transaction"),
    path(
        "transactions/<str:external_id>/return",
        earning.TransactionReturnView.as_view(),
        name="api-transaction-return",
    ),
]
