"""The transactional outbox, in process: written with its cause, run once, retried, swept, purged.

Tasks run inline here (the embedded mode); tests/integration/test_outbox_worker.py covers a real
worker on Redis, a killed worker and a broker that is down.
"""

import contextlib
import datetime as dt
import io
import socket
import threading

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from config.celery import app as celery_app
from loyalty import outbox, services
from loyalty.exceptions import InvalidInput, InvalidTransition, PermissionRequired
from loyalty.kernel import unit_of_work
from loyalty.models import OutboxMessage
from loyalty.notifications import notify_member
from loyalty.tasks import expire_points
from tests.helpers import DEAD_BROKER, admin_url, login, messages_of

CALLS: list[str] = []
FAILURES: list[Exception] = []
DURING: list = []


@celery_app.task(name="tests.outbox_probe")
def probe(tag: str = "x") -> str:
    """A task that records its runs, calls what DURING holds and raises what FAILURES holds."""
    CALLS.append(tag)
    for hook in DURING:
        hook()
    if FAILURES:
        raise FAILURES.pop(0)
    return tag


@pytest.fixture(autouse=True)
def _probe():
    CALLS.clear()
    FAILURES.clear()
    DURING.clear()


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """A transaction that commits (the test's own stays open): its on_commit hooks run at the end.
    A unit of work, so that an outer service called inside joins it as a request's would."""

    @contextlib.contextmanager
    def block():
        with django_capture_on_commit_callbacks(execute=True), unit_of_work("test: a transaction that commits"):
            yield

    return block


@pytest.mark.django_db(transaction=True)
def test_a_side_effect_must_be_written_inside_its_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        outbox.enqueue_on_commit(expire_points)
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db
def test_an_email_or_task_whose_transaction_rolls_back_is_never_sent(member, commit):
    with pytest.raises(RuntimeError, match="refused"), transaction.atomic():
        notify_member(member=member, template="retro_processed", context={"points": 5, "bill": "B", "occurred_on": ""})
        outbox.enqueue_on_commit(probe, "rolled back")
        raise RuntimeError("refused")
    with commit():  # a later commit does not send them either
        outbox.enqueue_on_commit(probe, "committed")
    outbox.sweep()
    assert OutboxMessage.objects.count() == 1
    assert mail.outbox == []
    assert CALLS == ["committed"]


@pytest.mark.django_db
def test_a_committed_side_effect_runs_once_after_commit_and_is_recorded(commit):
    with commit():
        message = outbox.enqueue_on_commit(probe, "a")
        assert CALLS == []  # nothing runs inside the transaction
    message.refresh_from_db()
    assert (message.kind, message.name, message.args) == ("task", "tests.outbox_probe", ["a"])
    assert message.status == "done" and message.attempts == 1 and message.publish_count == 1
    assert message.done_at is not None and message.lease_until is None
    outbox.sweep()  # nothing left to do
    assert CALLS == ["a"]


@pytest.mark.django_db
def test_a_task_that_retries_by_itself_is_refused():
    with pytest.raises(ValueError, match="autoretry_for"):
        outbox.enqueue_on_commit(expire_points)


@pytest.mark.django_db
def test_member_emails_go_through_the_outbox_as_kind_email(member, commit):
    with commit():
        assert notify_member(
            member=member, template="retro_processed", context={"points": 5, "bill": "B-1", "occurred_on": "2024-01-02"}
        )
    message = OutboxMessage.objects.get()
    assert (message.kind, message.name, message.status) == ("email", "loyalty.tasks.send_notification", "done")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [member.email]


@pytest.mark.django_db
def test_a_duplicate_delivery_of_a_done_message_does_nothing(commit):
    with commit():
        message = outbox.enqueue_on_commit(probe)
    probe.apply(headers={outbox.HEADER: message.pk})  # the broker hands it out a second time
    message.refresh_from_db()
    assert message.attempts == 1 and message.status == "done"
    assert CALLS == ["x"]


@pytest.mark.django_db
def test_a_failing_run_is_retried_with_backoff_then_given_up(commit):
    FAILURES.extend([OSError("mail server down")] * 3)
    calls = CALLS
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        with commit():
            message = outbox.enqueue(probe, max_attempts=3)
        message.refresh_from_db()
        assert message.status == "pending" and message.attempts == 1
        assert message.last_error == "OSError: mail server down"
        assert message.available_at == start + dt.timedelta(seconds=10)
        outbox.sweep()  # not due yet
        assert len(calls) == 1
    with time_machine.travel(start + dt.timedelta(seconds=11), tick=False):
        outbox.sweep()
        message.refresh_from_db()
        assert len(calls) == 2 and message.available_at == start + dt.timedelta(seconds=11 + 20)
    with time_machine.travel(start + dt.timedelta(seconds=60), tick=False):
        outbox.sweep()
    message.refresh_from_db()
    assert len(calls) == 3 and message.status == "failed" and message.attempts == 3
    outbox.sweep()
    assert len(calls) == 3  # a failed message waits for a person


@pytest.mark.django_db
def test_the_sweep_picks_up_a_message_whose_publish_was_lost(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):  # the process died right after the commit
        message = outbox.enqueue_on_commit(probe)
    message.refresh_from_db()
    assert message.status == "pending"
    assert outbox.sweep().ran_inline == 1
    message.refresh_from_db()
    assert message.status == "done" and CALLS == ["x"]


def _stalled(status, *, attempts=1, lease_until=None):
    message = OutboxMessage(
        name="tests.outbox_probe",
        status=status,
        attempts=attempts,
        max_attempts=3,
        publish_count=1,
        lease_until=lease_until or timezone.now() - dt.timedelta(seconds=1),
    )
    message.skip_history_when_saving = True  # as outbox.enqueue() writes them
    message.save()
    return message


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["published", "running"])
def test_the_sweep_republishes_a_message_whose_lease_expired(status):
    live = _stalled(status, lease_until=timezone.now() + dt.timedelta(minutes=1))
    dead = _stalled(status)
    assert outbox.sweep().ran_inline == 1
    live.refresh_from_db()
    dead.refresh_from_db()
    assert live.status == status  # still within its lease: left alone
    assert dead.status == "done" and dead.publish_count == 2
    assert CALLS == ["x"]


@pytest.mark.django_db
def test_a_run_that_keeps_dying_is_given_up():
    message = _stalled("running", attempts=3)
    assert outbox.sweep().failed == 1
    message.refresh_from_db()
    assert message.status == "failed" and "stopped without finishing" in message.last_error


@pytest.mark.django_db
def test_a_long_task_extends_its_lease_while_it_runs(settings, commit):
    settings.OUTBOX_RUN_LEASE_SECONDS = 60
    seen = []
    start = timezone.now()

    def long_task():
        for minute in range(1, 4):
            with time_machine.travel(start + dt.timedelta(minutes=minute), tick=False):
                outbox.heartbeat()
                seen.append(OutboxMessage.objects.get().lease_until - (start + dt.timedelta(minutes=minute)))
                assert outbox.sweep().ran_inline == 0  # alive: not handed to anyone else

    DURING.append(long_task)
    with time_machine.travel(start, tick=False), commit():
        outbox.enqueue_on_commit(probe)
    assert seen == [dt.timedelta(seconds=60)] * 3 and CALLS == ["x"]
    assert OutboxMessage.objects.get().status == "done"
    assert outbox.heartbeat() is False  # outside a run it does nothing


def test_the_publish_lease_doubles_up_to_the_visibility_timeout(settings):
    settings.OUTBOX_PUBLISH_LEASE_SECONDS = 300
    assert [outbox.publish_lease(n).total_seconds() for n in (1, 2, 3, 4, 5)] == [300, 600, 1200, 2400, 3600]


@pytest.mark.django_db
def test_a_dedupe_key_writes_one_message(commit):
    with commit():
        first = outbox.enqueue(probe, dedupe_key="expiry-reminder:lot:7")
        second = outbox.enqueue(probe, dedupe_key="expiry-reminder:lot:7")
    assert first.pk == second.pk and OutboxMessage.objects.count() == 1


@pytest.mark.django_db
def test_old_done_and_failed_messages_are_purged(settings):
    settings.OUTBOX_RETENTION_DAYS, settings.OUTBOX_FAILED_RETENTION_DAYS = 7, 30
    now = timezone.now()
    ago = lambda days: now - dt.timedelta(days=days)  # noqa: E731
    kept = [
        OutboxMessage.objects.create(name="t", status="done", done_at=ago(6), created_at=ago(6)),
        OutboxMessage.objects.create(name="t", status="failed", created_at=ago(20)),
        OutboxMessage.objects.create(name="t", status="pending", created_at=ago(60)),
    ]
    OutboxMessage.objects.create(name="t", status="done", done_at=ago(8), created_at=ago(8))
    OutboxMessage.objects.create(name="t", status="failed", created_at=ago(31))
    assert outbox.purge(now=now) == 2
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {m.pk for m in kept}


# --- a broker that is down, or hangs ----------------------------------------------------------


@pytest.mark.django_db
def test_with_the_broker_down_the_commit_stands_and_the_message_waits(broker, commit):
    broker(DEAD_BROKER)
    with commit():  # no exception leaves the on_commit hook
        message = outbox.enqueue_on_commit(probe)
    message.refresh_from_db()
    assert message.status == "pending" and message.publish_count == 0
    assert message.last_error.startswith("Publish failed: OperationalError")
    assert outbox.breaker.is_open()


class HungBroker:
    """A TCP server that accepts connections and never answers (a broker that hangs)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.accepted = []
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.mark.django_db
def test_a_hung_broker_costs_one_bounded_attempt_then_none(broker, commit):
    """No publish retries and a socket timeout: one try, which times out; then the breaker skips."""
    hung = HungBroker()
    old_options = celery_app.conf.broker_transport_options
    celery_app.conf.broker_transport_options = {**old_options, "socket_timeout": 1, "socket_connect_timeout": 1}
    try:
        broker(hung.url)
        with commit():
            first = outbox.enqueue_on_commit(probe)
        assert len(hung.accepted) == 1  # one connection, no retry
        with commit():
            second = outbox.enqueue_on_commit(probe)
        assert len(hung.accepted) == 1  # within the breaker's window: not even tried
    finally:
        celery_app.conf.broker_transport_options = old_options
        hung.close()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("pending", "pending")
    assert "Timeout" in first.last_error and second.last_error == ""


# --- re-sending (a person) ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_person_resends_a_failed_message_with_a_reason(admin_user, support_user, django_capture_on_commit_callbacks):
    message = _stalled("failed", attempts=3)
    with pytest.raises(PermissionRequired):
        services.resend_outbox_messages(messages=[message], actor=support_user, reason="Mail server fixed")
    with pytest.raises(InvalidInput):
        services.resend_outbox_messages(messages=[message], actor=admin_user, reason=" ")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.resend_outbox_messages(messages=[message], actor=admin_user, reason="Mail server fixed") == 1
    message.refresh_from_db()
    assert message.status == "done" and message.attempts == 1  # the count starts again
    assert CALLS == ["x"]
    record = message.history.get()
    assert record.history_user == admin_user and record.history_change_reason == "Re-sent: Mail server fixed"
    assert record.status == "pending"


@pytest.mark.django_db
def test_resending_a_running_message_is_refused(admin_user):
    message = _stalled("running", lease_until=timezone.now() + dt.timedelta(minutes=1))
    with pytest.raises(InvalidTransition):
        services.resend_outbox_messages(messages=[message], actor=admin_user, reason="Impatient")
    assert CALLS == []


# --- the admin ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db
def test_the_admin_lists_filters_and_resends(admin_user, auditor_user, django_capture_on_commit_callbacks):
    failed = _stalled("failed", attempts=3)
    done = _stalled("done")
    stuck = _stalled("published")  # lease expired: the sweep takes it next
    client = login(admin_user)
    changelist = admin_url("loyalty_outboxmessage_changelist")

    def listed(query):
        response = client.get(changelist + query)
        assert response.status_code == 200
        return {m.pk for m in response.context["cl"].result_list}

    assert listed("") == {failed.pk, done.pk, stuck.pk}
    assert listed("?status__exact=failed") == {failed.pk}
    assert listed("?stuck=due") == {stuck.pk}
    assert listed("?name=tests.outbox_probe&kind__exact=task") == {failed.pk, done.pk, stuck.pk}
    assert listed("?name=loyalty.tasks.send_member_email") == set()
    assert listed(f"?q={failed.pk}") == {failed.pk}
    assert client.get(admin_url("loyalty_outboxmessage_change", failed.pk)).status_code == 200

    post = {"action": "resend", "_selected_action": [failed.pk], "reason": ""}
    response = client.post(changelist, post, follow=True)
    assert "A reason is required." in messages_of(response)
    failed.refresh_from_db()
    assert failed.status == "failed"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(changelist, {**post, "reason": "Receiver fixed"}, follow=True)
    assert "Re-sent 1 message." in messages_of(response)
    failed.refresh_from_db()
    assert failed.status == "done" and CALLS == ["x"]
    history = client.get(admin_url("loyalty_outboxmessage_history", failed.pk))
    assert b"Re-sent: Receiver fixed" in history.content

    assert b'value="resend"' in client.get(changelist).content
    response = login(auditor_user).get(changelist)  # auditors see the list, and may not re-send
    assert response.status_code == 200 and b'value="resend"' not in response.content


@pytest.mark.django_db
def test_manage_py_sweep_outbox_runs_what_is_due(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        outbox.enqueue_on_commit(probe, "left behind")
    out = io.StringIO()
    call_command("sweep_outbox", stdout=out)
    assert CALLS == ["left behind"]
    assert "ran 1 inline" in out.getvalue() and "pending: 0" in out.getvalue()
