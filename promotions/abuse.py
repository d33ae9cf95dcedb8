"""Brute-force and misuse signals, counted in the shared cache (Redis in production).

Repeated failed validations from one client, IP or member lock that subject out for a while (429)
and raise an AbuseSignal; a member redeeming many codes in a short window is flagged.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from loyalty.exceptions import TooManyAttempts

from .models import AbuseSignal


def _subjects(client: str, ip: str | None, member_id: int | None) -> list[tuple[str, str]]:
    subjects = []
    if client:
        subjects.append((AbuseSignal.Subject.CLIENT, client))
    if ip:
        subjects.append((AbuseSignal.Subject.IP, ip))
    if member_id:
        subjects.append((AbuseSignal.Subject.MEMBER, str(member_id)))
    return subjects


def _key(kind: str, subject_type: str, subject: str) -> str:
    return f"codes:{kind}:{subject_type}:{subject}"


def check_not_locked(*, client: str, ip: str | None, member_id: int | None) -> None:
    for subject_type, subject in _subjects(client, ip, member_id):
        until = cache.get(_key("locked", subject_type, subject))
        if until:
            raise TooManyAttempts(
                f"Too many failed code attempts from this {subject_type}; try again after {until}.",
                errors={"retry_after": [until]},
            )


def _bump(key: str, window: int) -> int:
    if cache.add(key, 1, timeout=window):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window)
        return 1


def record_failures(*, client: str, ip: str | None, member_id: int | None, failed: int, codes: list[str]) -> None:
    """Count failed validations; at the limit, lock the subject out and raise a signal."""
    if failed <= 0:
        return
    limit = settings.CODE_FAILED_VALIDATION_LIMIT
    window = settings.CODE_FAILED_VALIDATION_WINDOW_SECONDS
    lockout = settings.CODE_LOCKOUT_SECONDS
    for subject_type, subject in _subjects(client, ip, member_id):
        count = 0
        for _ in range(failed):
            count = _bump(_key("failed", subject_type, subject), window)
        if count >= limit and not cache.get(_key("locked", subject_type, subject)):
            until = timezone.now() + dt.timedelta(seconds=lockout)
            cache.set(_key("locked", subject_type, subject), until.isoformat(timespec="seconds"), timeout=lockout)
            AbuseSignal.objects.create(
                kind=AbuseSignal.Kind.FAILED_VALIDATIONS,
                subject_type=subject_type,
                subject=subject,
                count=count,
                window_seconds=window,
                locked_until=until,
                detail={"last_codes": codes[-10:]},
            )


def record_redemption(*, member_id: int | None, codes: list[str]) -> None:
    """Flag a member who redeems many codes in a short window (once per window)."""
    if not member_id:
        return
    window = settings.CODE_RAPID_REDEMPTION_WINDOW_SECONDS
    count = 0
    for _ in codes:
        count = _bump(_key("redeemed", "member", str(member_id)), window)
    limit = settings.CODE_RAPID_REDEMPTION_LIMIT
    if count >= limit and cache.add(_key("flagged", "member", str(member_id)), 1, timeout=window):
        AbuseSignal.objects.create(
            kind=AbuseSignal.Kind.RAPID_REDEMPTIONS,
            subject_type=AbuseSignal.Subject.MEMBER,
            subject=str(member_id),
            count=count,
            window_seconds=window,
            detail={"last_codes": codes[-10:]},
        )
