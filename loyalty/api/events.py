"""Events out (API.md "Events out", "Member notifications"): webhooks, the event feed, and the
messages each member was sent."""

from __future__ import annotations

import datetime as dt

import django_filters
from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.events import EVENT_TYPES, webhooks
from loyalty.models import Event, MemberNotification, WebhookDelivery, WebhookSubscription

from .base import has_perms, member_or_404, read_write
from .member_lists import MemberListView
from .views import ServiceAction, validated

EVENT_CHOICES = sorted(EVENT_TYPES)
MAX_ID = 2**63 - 1


# --- webhooks ------------------------------------------------------------------------------------


class WebhookOut(serializers.ModelSerializer):
    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "events", "active", "description", "secret_prefix", "created_at", "updated_at"]


class WebhookWithSecretOut(WebhookOut):
    secret = serializers.CharField(help_text="Shown this once: store it to verify Loyalty-Signature.")

    class Meta(WebhookOut.Meta):
        fields = [*WebhookOut.Meta.fields, "secret"]


class WebhookIn(serializers.Serializer):
    url = serializers.URLField(max_length=500)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=["*", *EVENT_CHOICES]), min_length=1, max_length=len(EVENT_CHOICES) + 1
    )
    active = serializers.BooleanField(default=True)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class WebhookPatchIn(WebhookIn):
    reason = serializers.CharField(max_length=255, required=False)


class WebhookList(ServiceAction, generics.ListAPIView, request=WebhookIn, responses={201: WebhookWithSecretOut}):
    """GET: webhook subscriptions. POST: a new one; the answer carries its ``secret``, shown once."""

    serializer_class = WebhookOut
    permission_classes = [
        read_write(read=["loyalty.view_webhooksubscription"], write=["loyalty.add_webhooksubscription"])
    ]
    queryset = WebhookSubscription.objects.order_by("-id")

    def perform(self, target, actor, data):
        return webhooks.create_subscription(actor=actor, **data)

    def present(self, created) -> dict:
        return _with_secret(*created)


class WebhookDetail(APIView):
    permission_classes = [
        read_write(
            read=["loyalty.view_webhooksubscription"],
            write=["loyalty.change_webhooksubscription"],
            DELETE=["loyalty.delete_webhooksubscription"],
        )
    ]

    @extend_schema(responses=WebhookOut)
    def get(self, request, pk):
        return Response(WebhookOut(get_object_or_404(WebhookSubscription, pk=pk)).data)

    @extend_schema(request=WebhookPatchIn, responses=WebhookOut)
    def patch(self, request, pk):
        sub = get_object_or_404(WebhookSubscription, pk=pk)
        fields = validated(WebhookPatchIn, request, partial=True)
        reason = fields.pop("reason", "Changed via the API")
        sub = webhooks.update_subscription(subscription=sub, actor=request.user, reason=reason, **fields)
        return Response(WebhookOut(sub).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk):
        webhooks.delete_subscription(subscription=get_object_or_404(WebhookSubscription, pk=pk), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _with_secret(subscription: WebhookSubscription, secret: str) -> dict:
    return WebhookWithSecretOut({**WebhookOut(subscription).data, "secret": secret}).data


class WebhookRotateSecret(ServiceAction, responses=WebhookWithSecretOut):
    """A new secret (shown this once); the old one stops signing at once."""

    permission_classes = [has_perms("loyalty.rotate_webhooksubscription")]
    serializer_class = WebhookWithSecretOut

    def target(self, pk: int) -> WebhookSubscription:
        return get_object_or_404(WebhookSubscription, pk=pk)

    def perform(self, subscription, actor, data):
        return webhooks.rotate_secret(subscription=subscription, actor=actor)

    def present(self, rotated) -> dict:
        return _with_secret(*rotated)


class DeliveryOut(serializers.ModelSerializer):
    type = serializers.CharField(source="event_type")
    # Plain strings in the schema: "status" enums of other apps would collide in the naming.
    status = serializers.CharField(read_only=True, help_text="pending | delivered | failed")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "subscription",
            "event",
            "type",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "last_attempt_at",
            "delivered_at",
            "created_at",
        ]


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=WebhookDelivery.Status.choices)
    type = django_filters.ChoiceFilter(field_name="event_type", choices=[(t, t) for t in EVENT_CHOICES])

    class Meta:
        model = WebhookDelivery
        fields = ["status", "type"]


class WebhookDeliveries(generics.ListAPIView):
    """Deliveries of one subscription, newest first (filters: status, type)."""

    serializer_class = DeliveryOut
    filterset_class = DeliveryFilter
    permission_classes = [has_perms("loyalty.view_webhookdelivery")]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return WebhookDelivery.objects.none()
        sub = get_object_or_404(WebhookSubscription, pk=self.kwargs["pk"])
        return WebhookDelivery.objects.filter(subscription=sub).order_by("-id")


class ReplayIn(serializers.Serializer):
    reason = serializers.CharField(max_length=255, required=False, default="Replayed via the API")


class DeliveryReplay(ServiceAction, request=ReplayIn, responses=DeliveryOut):
    """Send the delivery again (now); the receiver dedupes by the event id."""

    permission_classes = [has_perms("loyalty.replay_webhookdelivery")]
    serializer_class = DeliveryOut

    def perform(self, target, actor, data):
        # Looked up after the body is checked: a bad body is a 400 even for an unknown delivery.
        delivery = get_object_or_404(WebhookDelivery, pk=self.kwargs["pk"])
        delivery = webhooks.replay_delivery(delivery=delivery, actor=actor, reason=data["reason"])
        delivery.refresh_from_db()
        return delivery


# --- the event feed ------------------------------------------------------------------------------


class EventOut(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "type", "created_at", "data"]


class EventPageOut(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The following page, or null at the end.")
    cursor = serializers.IntegerField(help_text="The last id in this page (or your after): poll with after=<it>.")
    results = EventOut(many=True)


class EventFeed(APIView):
    """Events oldest first after the cursor ``after`` (an event id; 0 or absent: from the start).

    ``next`` is the URL of the following page, or null once you are at the end: keep the last ``id``
    you processed and poll again with ``after=<it>``. Filters: ``type`` (repeatable), ``member``."""

    permission_classes = [has_perms("loyalty.view_event")]

    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="Only events with a greater id."),
            OpenApiParameter("type", str, many=True, enum=EVENT_CHOICES),
            OpenApiParameter("member", str, description="The member's external_id."),
            OpenApiParameter("page_size", int, description="Up to 500 (default 100)."),
        ],
        responses=EventPageOut,
    )
    def get(self, request):
        errors = {}
        after = _int(request.query_params.get("after", "0"), "after", errors, minimum=0, maximum=MAX_ID)
        size = _int(request.query_params.get("page_size", "100"), "page_size", errors, minimum=1, maximum=500)
        types = request.query_params.getlist("type")
        unknown = sorted(set(types) - EVENT_TYPES)
        if unknown:
            errors["type"] = [f"Unknown event types: {', '.join(unknown)}."]
        if errors:
            return Response({"code": "invalid", "detail": "Invalid query.", "errors": errors}, status=400)
        settle = timezone.now() - dt.timedelta(seconds=settings.EVENTS_FEED_SETTLE_SECONDS)
        qs = Event.objects.filter(id__gt=after, created_at__lte=settle)
        if types:
            qs = qs.filter(type__in=types)
        if member := request.query_params.get("member"):
            qs = qs.filter(member=member_or_404(member))
        rows = list(qs.order_by("id")[: size + 1])
        more, rows = len(rows) > size, rows[:size]
        cursor = rows[-1].pk if rows else after
        next_url = None
        if more:
            params = request.query_params.copy()
            params["after"] = str(cursor)
            next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        return Response({"next": next_url, "cursor": cursor, "results": EventOut(rows, many=True).data})


def _int(raw: str, name: str, errors: dict, *, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        errors[name] = ["A whole number."]
        return minimum
    if value < minimum or (maximum is not None and value > maximum):
        errors[name] = [f"Between {minimum} and {maximum}." if maximum else f"At least {minimum}."]
    return value


# --- member notifications ------------------------------------------------------------------------


class NotificationOut(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="queued | sent | failed | skipped")
    reason = serializers.CharField(read_only=True, help_text="opted_out | no_email | ... (skipped), else empty")
    category = serializers.CharField(read_only=True, help_text="transactional | marketing")

    class Meta:
        model = MemberNotification
        fields = ["id", "template", "channel", "category", "status", "reason", "created_at", "sent_at"]


class NotificationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=MemberNotification.Status.choices)
    template = django_filters.CharFilter()

    class Meta:
        model = MemberNotification
        fields = ["status", "template"]


class MemberNotifications(MemberListView):
    """Every message to the member, sent or skipped, newest first."""

    serializer_class = NotificationOut
    filterset_class = NotificationFilter
    permission_classes = [has_perms("loyalty.view_member", "loyalty.view_membernotification")]

    def member_rows(self, member):
        return MemberNotification.objects.filter(member=member).order_by("-id")
