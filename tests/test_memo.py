"""Reads remembered per transaction (issue 18): once inside one transaction, afresh in the next, and
forgotten when the row changes."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from loyalty.events.webhooks import _active_subscriptions
from loyalty.kernel import memo, outer_service
from loyalty.models import ProgramSettings, WebhookSubscription


def test_outside_a_transaction_nothing_is_remembered():
    calls = []
    memo.remembered("k", lambda: calls.append(1))
    memo.remembered("k", lambda: calls.append(1))
    assert calls == [1, 1]


@pytest.mark.django_db
def test_program_settings_are_read_once_per_transaction_and_afresh_after_a_save():
    ProgramSettings.objects.get_or_create(pk=1)

    @outer_service
    def service():
        with CaptureQueriesContext(connection) as ctx:
            first = ProgramSettings.load()
            again = ProgramSettings.load()
        assert again is first and len(ctx.captured_queries) == 1
        first.currency = "USD"
        first.save()
        with CaptureQueriesContext(connection) as ctx:
            assert ProgramSettings.load().currency == "USD"
        assert len(ctx.captured_queries) == 1

    service()
    service()  # the next transaction reads afresh: its first load() is one query again (asserted inside)
    ProgramSettings.objects.filter(pk=1).update(currency="GBP")  # outside a service: always read
    assert ProgramSettings.load().currency == "GBP"
    ProgramSettings.objects.filter(pk=1).update(currency="EUR")
    assert ProgramSettings.load().currency == "EUR"


@pytest.mark.django_db
def test_a_subscription_created_in_the_transaction_is_seen_by_the_next_event():
    @outer_service
    def service():
        assert _active_subscriptions() == []
        sub = WebhookSubscription.objects.create(url="https://example.com/hook", events=["*"], secret="s" * 32)
        assert [s.pk for s in _active_subscriptions()] == [sub.pk]
        sub.delete()
        assert _active_subscriptions() == []

    service()


@pytest.mark.django_db
def test_a_rolled_back_savepoint_does_not_leave_its_reads_behind():
    @outer_service
    def service():
        try:
            with transaction.atomic():
                WebhookSubscription.objects.create(url="https://example.com/hook", events=["*"], secret="s" * 32)
                assert len(_active_subscriptions()) == 1
                raise RuntimeError
        except RuntimeError:
            pass
        assert _active_subscriptions() == []

    service()
