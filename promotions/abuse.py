"""Brute-force and misuse signals, counted in the shared cache (Redis in production).

Repeated failed validations lock out the caller that made them: its API client and its IP
address, each counted on its own (429, and an AbuseSignal). Only callers are ever locked: a
guesser who names a member (``"member": "M-1"``) locks itself out, never the member, whose own
shop and support desk go on validating its codes. Failures against one member, from whoever,
are still counted, and past the limit raise an anomaly (without a lock) for staff to review.
A member redeeming many codes in a short window is flagged.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from loyalty.exceptions import TooManyAttempts

from .models import AbuseSignal


def _callers(client: str, ip: str | None) -> list[tuple[str, str]]:
    """Who is calling: the subjects a lockout applies to."""
    subjects = []
    if client:
        subjects.append((AbuseSignal.Subject.CLIENT, client))
    if ip:
        subjects.append((AbuseSignal.Subject.IP, ip))
    return subjects


def _key(kind: str, subject_type: str, subject: str) -> str:
    return f"codes:{kind}:{subject_type}:{subject}"


def check_not_locked(*, client: str, ip: str | None) -> None:
    """429 for a caller (client or IP) that is locked out."""
    callers = _callers(client, ip)
    locks = cache.get_many([_key("locked", t, s) for t, s in callers])  # one round trip for both
    for subject_type, subject in callers:
        until = locks.get(_key("locked", subject_type, subject))
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
    """Count failed validations; at the limit, lock the caller out and raise a signal. Failures
    naming a member count towards an anomaly about that member, never towards a lock."""
    if failed <= 0:
        return
    limit = settings.CODE_FAILED_VALIDATION_LIMIT
    window = settings.CODE_FAILED_VALIDATION_WINDOW_SECONDS
    lockout = settings.CODE_LOCKOUT_SECONDS
    detail = {"last_codes": codes[-10:], "member": member_id, "client": client, "ip": ip}
    for subject_type, subject in _callers(client, ip):
        count = _bump_by(_key("failed", subject_type, subject), failed, window)
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
                detail=detail,
            )
    if member_id:
        member = str(member_id)
        count = _bump_by(_key("failed", AbuseSignal.Subject.MEMBER, member), failed, window)
        if count >= limit and cache.add(_key("flagged-failures", AbuseSignal.Subject.MEMBER, member), 1, window):
            AbuseSignal.objects.create(
                kind=AbuseSignal.Kind.FAILED_VALIDATIONS,
                subject_type=AbuseSignal.Subject.MEMBER,
                subject=member,
                count=count,
                window_seconds=window,
                locked_until=None,  # a member is never locked out: the callers are
                detail=detail,
            )


def _bump_by(key: str, amount: int, window: int) -> int:
    count = 0
    for _ in range(amount):
        count = _bump(key, window)
    return count


def record_redemption(*, member_id: int | None, codes: list[str]) -> None:
    """Flag a member who redeems many codes in a short window (once per window)."""
    if not member_id:
        return
    window = settings.CODE_RAPID_REDEMPTION_WINDOW_SECONDS
    count = _bump_by(_key("redeemed", "member", str(member_id)), len(codes), window)
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
