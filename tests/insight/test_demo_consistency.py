"""The demo data reads true on the screens: no "Redeemed" ledger row without its redemption."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from loyalty.models import LedgerEntry
from redemptions.models import Redemption


@pytest.mark.django_db
def test_every_redeem_entry_of_the_demo_has_its_redemption(settings):
    settings.DEBUG = True  # seed_demo refuses otherwise (it creates known passwords)
    call_command("seed_demo", members=30, verbosity=0)
    redeems = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REDEEM)
    assert redeems.exists()
    linked = set(Redemption.objects.exclude(ledger_entry=None).values_list("ledger_entry_id", flat=True))
    orphans = [(e.pk, e.source_type, e.reason) for e in redeems if e.pk not in linked]
    assert orphans == []
