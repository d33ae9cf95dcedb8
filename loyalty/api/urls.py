from django.urls import path

from loyalty.insight import api as insight_api

from . import catalog, earning, events, members

urlpatterns = [
    path("members/", members.MemberList.as_view(), name="api-members"),
    path("members/<str:external_id>/", members.MemberDetail.as_view(), name="api-member"),
    path("members/<str:external_id>/balances/", members.MemberBalances.as_view(), name="api-member-balances"),
    path("members/<str:external_id>/ledger/", members.MemberLedger.as_view(), name="api-member-ledger"),
    path("members/<str:external_id>/adjustments/", members.MemberAdjustments.as_view(), name="api-member-adjustments"),
    path("members/<str:external_id>/tier", members.MemberTierChange.as_view(), name="api-member-tier"),
    path(
        "members/<str:external_id>/tier-history/", members.MemberTierHistory.as_view(), name="api-member-tier-history"
    ),
    path(
        "members/<str:external_id>/notifications/",
        events.MemberNotifications.as_view(),
        name="api-member-notifications",
    ),
    path("webhooks/", events.WebhookList.as_view(), name="api-webhooks"),
    path("webhooks/<int:pk>/", events.WebhookDetail.as_view(), name="api-webhook"),
    path("webhooks/<int:pk>/rotate-secret", events.WebhookRotateSecret.as_view(), name="api-webhook-rotate"),
    path("webhooks/<int:pk>/deliveries/", events.WebhookDeliveries.as_view(), name="api-webhook-deliveries"),
    path("webhook-deliveries/<int:pk>/replay", events.DeliveryReplay.as_view(), name="api-webhook-delivery-replay"),
    path("events/", events.EventFeed.as_view(), name="api-events"),
    path("metrics/", catalog.MetricList.as_view(), name="api-metrics"),
    path("tiers/", catalog.TierList.as_view(), name="api-tiers"),
    path("reports/summary/", insight_api.ReportSummary.as_view(), name="api-reports-summary"),
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
