"""The API tooling every app's ``api/`` package uses: idempotency, one error shape, pagination,
NUL-refusing parsers, permission helpers and filters.

The implementations live in ``loyalty.api`` (settings name them by those paths); other apps import
them from here only, never from ``loyalty.api.*`` and never a private (``_``) name.
"""

from loyalty.api.answers import ModelOut
from loyalty.api.base import (
    IDEMPOTENCY_KEY_HEADER,
    MAX_KEY_LENGTH,
    ReadWritePerms,
    has_perms,
    idempotent,
    member_or_404,
    read_write,
)
from loyalty.api.errors import error_response, exception_handler, not_found_view, server_error
from loyalty.api.fields import ChoiceStringField
from loyalty.api.filters import IsoDateTimeFilter, UtcIsoDateTimeField
from loyalty.api.pagination import PageNumberPagination
from loyalty.api.parsers import NUL, FormParser, JSONParser, MultiPartParser, contains_nul
from loyalty.api.permissions import ModelPermissions
from loyalty.api.views import ServiceAction, validated
from loyalty.network import client_ip

__all__ = [
    "IDEMPOTENCY_KEY_HEADER",
    "MAX_KEY_LENGTH",
    "NUL",
    "ChoiceStringField",
    "FormParser",
    "IsoDateTimeFilter",
    "JSONParser",
    "ModelOut",
    "ModelPermissions",
    "MultiPartParser",
    "PageNumberPagination",
    "ReadWritePerms",
    "ServiceAction",
    "UtcIsoDateTimeField",
    "client_ip",
    "contains_nul",
    "error_response",
    "exception_handler",
    "has_perms",
    "idempotent",
    "member_or_404",
    "not_found_view",
    "read_write",
    "server_error",
    "validated",
]
