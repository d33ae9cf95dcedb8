"""Webhooks: subscriptions, signing, the SSRF guard, and one delivery attempt.

Each delivery is an outbox message of ``kind=webhook`` on its own queue (``WEBHOOK_QUEUE``), so a
slow receiver only holds a webhook worker, and for at most ``WEBHOOK_TIMEOUT_SECONDS`` (a wall-clock
limit, not a per-read one). A failed attempt raises, and the outbox retries that one delivery with
the webhook backoff (``outbox.policy_for("webhook")``); other deliveries, of the same subscription
or others, are separate messages and are not held up. The delivery row mirrors the outbox's
attempts: ``pending`` until a 2xx (``delivered``) or the last attempt (``failed``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import json
import secrets
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from loyalty import outbox
from loyalty.exceptions import InvalidInput
from loyalty.kernel import memo, outer_service
from loyalty.models import Event, OutboxMessage, WebhookDelivery, WebhookSubscription
from loyalty.workflow import check_transition, save_with_history

from .types import EVENT_TYPES

TASK = "loyalty.tasks.deliver_webhook"
SIGNATURE_HEADER = "Loyalty-Signature"
EVENT_ID_HEADER = "Loyalty-Event-Id"
MAX_RESPONSE_BYTES = 64 * 1024
Status = WebhookDelivery.Status


class UnsafeURL(InvalidInput, code="unsafe_url"): ...


class DeliveryFailed(Exception):
    """A receiver did not answer 2xx in time; the outbox retries the delivery with backoff."""


# --- signing -------------------------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``Loyalty-Signature``: ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, tolerance: int = 300, now: float | None = None) -> bool:
    """What a receiver does (docs/api.md): recompute, compare in constant time, refuse stale ``t``."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), f"t={timestamp},v1={parts.get('v1', '')}")


def body_of(event: Event) -> bytes:
    return json.dumps(event.payload(), cls=DjangoJSONEncoder, separators=(",", ":")).encode()


# --- the SSRF guard ------------------------------------------------------------------------------


def _private_allowed(host: str) -> bool:
    return settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES or host.lower() in {
        h.lower() for h in settings.WEBHOOK_ALLOWED_HOSTS
    }


def _address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if any(ip in ipaddress.ip_network(net, strict=False) for net in settings.WEBHOOK_ALLOWED_NETWORKS):
        return True
    return ip.is_global and not ip.is_multicast


def check_url(url: str) -> None:
    """When a subscription is saved: an http(s) URL, and (in production) not a private address.

    With private addresses allowed (DEBUG, tests) the name is not looked up now: every attempt
    resolves it anyway."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("The URL must be http(s)://host/...", errors={"url": ["An http or https URL."]})
    if not _private_allowed(parts.hostname):
        resolve(url)


def resolve(url: str) -> tuple[str, int, str]:
    """(host, port, the address to connect to), or ``UnsafeURL``: loopback, link-local, private,
    reserved and multicast addresses are refused unless ``WEBHOOK_ALLOW_PRIVATE_ADDRESSES`` (DEBUG,
    tests) or the allow-lists say so. Every address the name resolves to is checked, and the
    connection goes to the checked one (a second lookup could answer differently)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("The URL must be http(s)://host/...", errors={"url": ["An http or https URL."]})
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeURL(f"Cannot resolve {parts.hostname}: {exc}", errors={"url": ["Unknown host."]}) from exc
    addresses = [info[4][0] for info in infos]
    if not _private_allowed(parts.hostname):
        refused = [a for a in addresses if not _address_allowed(a)]
        if refused:
            raise UnsafeURL(
                f"{parts.hostname} resolves to a private or local address ({refused[0]}); "
                "add it to WEBHOOK_ALLOWED_HOSTS or WEBHOOK_ALLOWED_NETWORKS to allow it.",
                errors={"url": ["A private, loopback or link-local address."]},
            )
    return parts.hostname, port, addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> int:
    """POST and return the status code. The whole exchange is cut off after ``timeout`` seconds
    (a receiver trickling bytes cannot stretch it), no redirects are followed."""
    host, port, address = resolve(url)
    parts = urlsplit(url)
    cls = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    conn = cls(host, port, address, timeout)
    timed_out = threading.Event()

    def cut_off() -> None:
        timed_out.set()
        if conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(timeout, cut_off)
    timer.daemon = True
    timer.start()
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return response.status
    except (OSError, http.client.HTTPException) as exc:
        # The socket's own timeout (a TimeoutError) and the wall-clock cut-off both end at
        # ``timeout``: whichever comes first, the delivery log says the same thing.
        if timed_out.is_set() or isinstance(exc, TimeoutError):
            raise TimeoutError(f"No answer within {timeout:g} s") from exc
        raise
    finally:
        timer.cancel()
        conn.close()


# --- subscriptions -------------------------------------------------------------------------------


def _clean_events(events: Any) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise InvalidInput('events: a non-empty list of event types, or ["*"].', errors={"events": ["A list."]})
    unknown = sorted(set(events) - EVENT_TYPES - {"*"})
    if unknown:
        raise InvalidInput(f"Unknown event types: {unknown}.", errors={"events": [f"Unknown: {', '.join(unknown)}."]})
    return sorted(set(events))


@outer_service
def create_subscription(
    *, url: str, events: list[str], actor: User, active: bool = True, description: str = ""
) -> tuple[WebhookSubscription, str]:
    """A new receiver and its secret (the only time the secret is shown)."""
    check_url(url)
    secret = new_secret()
    sub = WebhookSubscription(
        url=url,
        events=_clean_events(events),
        active=active,
        description=description,
        secret=secret,
        secret_prefix=secret[:12],
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    save_with_history(sub, actor=actor, reason="Webhook subscription created")
    return sub, secret


@outer_service
def update_subscription(*, subscription: WebhookSubscription, actor: User, reason: str = "", **fields: Any):
    unknown = set(fields) - {"url", "events", "active", "description"}
    if unknown:
        raise InvalidInput(f"Cannot change {', '.join(sorted(unknown))}.")
    sub = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    if "url" in fields:
        check_url(fields["url"])
    if "events" in fields:
        fields["events"] = _clean_events(fields["events"])
    changed = [name for name, value in fields.items() if getattr(sub, name) != value]
    for name in changed:
        setattr(sub, name, fields[name])
    if changed:
        save_with_history(sub, actor=actor, reason=reason or "Webhook subscription changed", update_fields=changed)
    return sub


@outer_service
def rotate_secret(*, subscription: WebhookSubscription, actor: User) -> tuple[WebhookSubscription, str]:
    """A new secret, effective for every attempt from now on (pending retries included)."""
    sub = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    secret = new_secret()
    sub.secret, sub.secret_prefix, sub.secret_rotated_at = secret, secret[:12], timezone.now()
    save_with_history(
        sub, actor=actor, reason="Secret rotated", update_fields=["secret", "secret_prefix", "secret_rotated_at"]
    )
    return sub, secret


# --- deliveries ----------------------------------------------------------------------------------


def _enqueue(delivery: WebhookDelivery) -> None:
    message = outbox.enqueue(TASK, args=[delivery.pk], kind=outbox.Kind.WEBHOOK)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(outbox_message=message)


# The active subscriptions, read once per transaction (a redemption emits two events); any save or
# delete of a subscription in this process reads them afresh.
_ACTIVE = "webhooks.active_subscriptions"
_forget_active = memo.forgetter(_ACTIVE)
post_save.connect(_forget_active, sender=WebhookSubscription, dispatch_uid="webhooks-active-save")
post_delete.connect(_forget_active, sender=WebhookSubscription, dispatch_uid="webhooks-active-delete")


def _active_subscriptions() -> list[WebhookSubscription]:
    return memo.remembered(
        _ACTIVE, lambda: list(WebhookSubscription.objects.filter(active=True).only("pk", "events", "active"))
    )


def queue_deliveries(event: Event) -> list[WebhookDelivery]:
    """One delivery, and its outbox message, per active subscription that wants this type."""
    subscriptions = _active_subscriptions()
    deliveries = []
    for sub in subscriptions:
        if sub.wants(event.type):
            delivery = WebhookDelivery.objects.create(subscription=sub, event=event, event_type=event.type)
            _enqueue(delivery)
            deliveries.append(delivery)
    return deliveries


def _move(delivery_id: int, target: str, **fields: Any) -> bool:
    return bool(
        WebhookDelivery.objects.filter(pk=delivery_id, status__in=WebhookDelivery.sources(target)).update(
            status=target, attempts=F("attempts") + 1, **fields
        )
    )


def attempt(delivery_id: int) -> str:
    """One attempt (the task ``deliver_webhook``). Raises ``DeliveryFailed`` so the outbox retries."""
    delivery = WebhookDelivery.objects.select_related("subscription", "event").filter(pk=delivery_id).first()
    if delivery is None or delivery.status == Status.DELIVERED:
        return "skipped"
    sub = delivery.subscription
    if not sub.active:
        _move(delivery.pk, Status.FAILED, last_error="The subscription is inactive.", next_attempt_at=None)
        return "inactive"
    body = body_of(delivery.event)
    headers = {
        EVENT_ID_HEADER: str(delivery.event_id),
        SIGNATURE_HEADER: signature(sub.secret, int(time.time()), body),
        "User-Agent": "Loyalty-Webhooks/1",
    }
    code, error = None, ""
    try:
        code = post(sub.url, body, headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS)
    except UnsafeURL as exc:
        error = f"Refused: {exc.detail if hasattr(exc, 'detail') else exc}"
    except (OSError, http.client.HTTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"
    now = timezone.now()
    if code is not None and 200 <= code < 300:
        _move(
            delivery.pk,
            Status.DELIVERED,
            last_status_code=code,
            last_error="",
            delivered_at=now,
            last_attempt_at=now,
            next_attempt_at=None,
        )
        return "delivered"
    error = error or f"HTTP {code}"
    run = outbox.current_message()
    number, limit = (run.attempts, run.max_attempts) if run else (delivery.attempts + 1, delivery.attempts + 1)
    last = number >= limit
    _move(
        delivery.pk,
        Status.FAILED if last else Status.PENDING,
        last_status_code=code,
        last_error=error[:2000],
        last_attempt_at=now,
        next_attempt_at=None if last else now + outbox.policy_for(outbox.Kind.WEBHOOK).delay(number),
    )
    raise DeliveryFailed(error)


@outer_service
def replay_delivery(*, delivery: WebhookDelivery, actor: User, reason: str = "") -> WebhookDelivery:
    """Send again: a delivered or failed one as a fresh delivery run; a pending one right now."""
    locked = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
    now = timezone.now()
    if locked.status == Status.PENDING:
        OutboxMessage.objects.filter(pk=locked.outbox_message_id, status=OutboxMessage.Status.PENDING).update(
            available_at=now
        )
        if not locked.outbox_message_id or not OutboxMessage.objects.filter(pk=locked.outbox_message_id).exists():
            _enqueue(locked)
        return locked
    check_transition(WebhookDelivery.STATUS_TRANSITIONS, locked.status, Status.PENDING, field="status")
    locked.status, locked.next_attempt_at, locked.last_error = Status.PENDING, now, ""
    save_with_history(
        locked, actor=actor, reason=reason or "Replayed", update_fields=["status", "next_attempt_at", "last_error"]
    )
    _enqueue(locked)
    return locked


def deliver_due(*, inline: bool = False, now=None) -> outbox.RelayResult:
    """``manage.py deliver_webhooks`` and beat: send every webhook delivery due now.

    Publishes them to the webhook queue (or, ``inline`` or with no broker, runs them here)."""
    now = now or timezone.now()
    ids = list(
        OutboxMessage.objects.filter(
            kind=OutboxMessage.Kind.WEBHOOK, status=OutboxMessage.Status.PENDING, available_at__lte=now
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:5000]
    )
    if inline:
        return outbox.run_inline(ids)
    return outbox.relay(ids=ids, now=now)


@outer_service
def delete_subscription(*, subscription: WebhookSubscription, actor: User) -> None:
    """Remove a receiver with its delivery log; its pending deliveries stop (their task finds nothing)."""
    sub = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    sub._change_reason = "Webhook subscription deleted"
    sub._history_user = actor if getattr(actor, "pk", None) else None
    sub.delete()
