"""Who is calling: the client's IP address, for the code lockout and the admin sign-in lockout.

It is the connection's REMOTE_ADDR. X-Forwarded-For is used only when the connection comes from a
proxy listed in TRUSTED_PROXIES: then the client is the right-most address that is not one of
those proxies. Otherwise the header is ignored (a caller could forge it to dodge a per-IP lockout).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def _ip(raw: str) -> str | None:
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    remote = _ip(request.META.get("REMOTE_ADDR") or "")
    trusted = set(settings.TRUSTED_PROXIES)
    if remote is None or remote not in trusted:
        return remote
    hops = [_ip(part) for part in (request.META.get("HTTP_X_FORWARDED_FOR") or "").split(",")]
    for hop in reversed(hops):
        if hop is None:
            return remote  # a malformed header: fall back to the proxy itself
        if hop not in trusted:
            return hop
    return remote
