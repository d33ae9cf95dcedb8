"""``Authorization: Token <key>`` against ``ApiKey`` digests (the API contract's header, our keys)."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from loyalty import services


class ApiKeyAuthentication(authentication.TokenAuthentication):
    """DRF's token header parsing (and its OpenAPI security scheme); the key is checked by
    ``services.authenticate_api_key``: unknown, revoked or expired keys are 401."""

    def authenticate_credentials(self, key: str):
        try:
            api_key = services.authenticate_api_key(key)
        except services.ApiKeyRejected as exc:
            raise exceptions.AuthenticationFailed(exc.detail) from None
        return api_key.owner, api_key
