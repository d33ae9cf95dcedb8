"""API keys: secrets shown once, stored only as a digest.

A key is ``lk_`` + 40 random URL-safe characters (240 bits). The table keeps its SHA-256 digest
(a unique index: one fast lookup per request; a slow password hash would cost every API call
and buys nothing against a key this long) and a short ``prefix`` so people can tell keys apart.
Nobody, superusers included, can read a key back: it is never stored.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from loyalty.kernel.models import choices, optional_ref

KEY_PREFIX = "lk_"
PREFIX_LENGTH = 10  # "lk_" and 7 characters of the secret: enough to tell keys apart, useless to guess


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class ApiKey(models.Model):
    Status = choices("Status", "active expired revoked")

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, help_text="What the key is for, e.g. 'POS store 42'.")
    prefix = models.CharField(max_length=16, db_index=True, help_text="The key's first characters.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="Updated at most once a minute.")
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True, help_text="Empty means never.")
    revoked_at = models.DateTimeField(null=True, blank=True, db_index=True)
    revoked_by = optional_ref(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL)
    revoke_reason = models.CharField(max_length=255, blank=True)
    # last_used_at moves on use (a plain UPDATE, no history row per request).
    history = HistoricalRecords(excluded_fields=["last_used_at"])

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        permissions = [
            ("revoke_apikey", "Can revoke API keys"),
            # Not about keys: who may read the OpenAPI schema and the API docs (Auditor, Integration).
            ("view_api_schema", "Can read the API schema and docs"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=True) | ~Q(revoke_reason=""), name="apikey_revoked_with_reason"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def status_at(self, when=None) -> str:
        when = when or timezone.now()
        if self.revoked_at is not None:
            return self.Status.REVOKED
        if self.expires_at is not None and self.expires_at <= when:
            return self.Status.EXPIRED
        return self.Status.ACTIVE

    @property
    def status(self) -> str:
        return self.status_at()
