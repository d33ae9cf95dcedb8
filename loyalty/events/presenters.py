"""How the base app's objects appear in events: as their GET endpoints show them."""

from __future__ import annotations

from loyalty.models import LedgerEntry, Member, PointLot

from . import register_presenter


def _member(obj: Member) -> dict:
    from loyalty.api.members import MemberOut

    return MemberOut(obj).data


def _entry(obj: LedgerEntry) -> dict:
    from loyalty.api.members import LedgerEntryOut

    return LedgerEntryOut(obj).data


def _lot(obj: PointLot) -> dict:
    """A lot has no endpoint of its own; this is its line in ``GET /members/{id}/balances/`` ``expiring``."""
    return {
        "lot": obj.pk,
        "entry": obj.entry_id,
        "metric": obj.metric.code,
        "amount": obj.remaining,
        "expires_at": obj.expires_at,
    }


def register() -> None:
    register_presenter(Member, _member)
    register_presenter(LedgerEntry, _entry)
    register_presenter(PointLot, _lot)
