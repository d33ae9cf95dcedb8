"""The transactional outbox: a side effect is written with its cause and done after commit, once.

- **Write** (inside the transaction of the change): ``enqueue(task, args=..., kind=...)`` or
  ``enqueue_on_commit(task, *args, **kwargs)`` writes an ``OutboxMessage`` row and registers an
  on_commit hook. A change that rolls back takes its row with it: nothing is ever sent for it.
- **Relay** (after commit): the hook publishes just the rows of that transaction to the broker, or,
  with no broker (the embedded default, ``task_always_eager``), runs them inline. It never raises into
  the caller: a broker that is down leaves the rows ``pending`` for the sweep, and the request that
  committed the change answers as usual. Publishing is bounded (no publish retries, short socket
  timeouts, see ``CELERY_BROKER_TRANSPORT_OPTIONS``) and after one failure this process stops
  trying on commit for one sweep interval.
- **Sweep** (beat, every ``OUTBOX_SWEEP_SECONDS``): publishes what is due: rows still pending
  (the broker was down, the process died, a retry's backoff ended) and rows whose lease expired
  (published but never started, or a worker died mid-run), long before the broker's own
  visibility timeout would hand an unacknowledged message out again.
- **Consume**: every Celery task of the project derives from ``OutboxTask`` (the app's task class,
  ``config/celery.py``). A message carrying the ``outbox_id`` header claims its row (``running``,
  with a lease of ``OUTBOX_RUN_LEASE_SECONDS``), runs, and marks it ``done``; an error is recorded
  and retried with backoff (``RETRY_POLICIES``), up to ``max_attempts``, then ``failed``. Long tasks
  call ``heartbeat()`` as they progress so the sweep does not re-publish them while they live.
  Delivery is at least once: a consumer must stay idempotent (re-check its state under a lock).

Other kinds of side effect plug in as a Celery task plus a ``kind`` (its retry policy and its
filter in the admin): member emails are ``kind=email``, webhook deliveries ``kind=webhook``.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from celery import Task
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from config.celery import app as celery_app

from .models import OutboxMessage

logger = logging.getLogger(__name__)

HEADER = "outbox_id"
BATCH_SIZE = 500
SWEEP_BUDGET_SECONDS = 20  # one sweep run stops publishing after this; the next one continues
Kind = OutboxMessage.Kind
Status = OutboxMessage.Status


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing run is retried, and how long to wait before each retry."""

    max_attempts: int
    backoff_seconds: int
    max_backoff_seconds: int

    def delay(self, attempts: int) -> dt.timedelta:
        """Wait after the ``attempts``-th failed run: doubling from ``backoff_seconds``, capped."""
        seconds = self.backoff_seconds * 2 ** max(attempts - 1, 0)
        return dt.timedelta(seconds=min(seconds, self.max_backoff_seconds))


RETRY_POLICIES: dict[str, RetryPolicy] = {
    Kind.TASK: RetryPolicy(max_attempts=8, backoff_seconds=10, max_backoff_seconds=600),  # ~35 min in all
    Kind.EMAIL: RetryPolicy(max_attempts=8, backoff_seconds=30, max_backoff_seconds=1800),  # ~2 h
    # Kind.WEBHOOK: from the WEBHOOK_* settings (policy_for), by default 32 attempts, 30 s .. 1 h, ~25 h
}
DEFAULT_POLICY = RETRY_POLICIES[Kind.TASK]


def policy_for(kind: str) -> RetryPolicy:
    if kind == Kind.WEBHOOK:  # from the settings, so an installation (or a test) can shorten it
        return RetryPolicy(
            max_attempts=settings.WEBHOOK_MAX_ATTEMPTS,
            backoff_seconds=settings.WEBHOOK_BACKOFF_SECONDS,
            max_backoff_seconds=settings.WEBHOOK_MAX_BACKOFF_SECONDS,
        )
    return RETRY_POLICIES.get(kind, DEFAULT_POLICY)


def queue_for(kind: str) -> str | None:
    """Webhook deliveries have their own queue: a slow receiver never holds up other work."""
    return (settings.WEBHOOK_QUEUE or None) if kind == Kind.WEBHOOK else None


# --- write -------------------------------------------------------------------------------------


def enqueue(
    task: Any,
    *,
    args: Iterable[Any] = (),
    kwargs: dict[str, Any] | None = None,
    kind: str = Kind.TASK,
    dedupe_key: str | None = None,
    available_at: dt.datetime | None = None,
    max_attempts: int | None = None,
) -> OutboxMessage:
    """Write a side effect into the current transaction; it is published when that commits.

    ``task`` is a Celery task or its name; ``args``/``kwargs`` must be JSON (ids, not objects).
    With ``dedupe_key``, a second message with the same key is not written (the first is returned).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("outbox.enqueue() belongs inside the transaction of the change that causes it.")
    if not isinstance(task, str) and getattr(task, "autoretry_for", None):
        # Two retry mechanisms would run each other's copies; the outbox's is the one that survives
        # a dead worker and shows in the admin.
        raise ValueError(f"{task.name} retries by itself (autoretry_for); through the outbox, the outbox retries.")
    message = OutboxMessage(
        kind=kind,
        name=task if isinstance(task, str) else task.name,
        args=list(args),
        kwargs=dict(kwargs or {}),
        dedupe_key=dedupe_key or None,
        available_at=available_at or timezone.now(),
        max_attempts=max_attempts or policy_for(kind).max_attempts,
    )
    message.skip_history_when_saving = True  # history records people's re-sends, not every message
    if dedupe_key:
        try:
            with transaction.atomic():
                message.save()
        except IntegrityError:
            return OutboxMessage.objects.get(dedupe_key=dedupe_key)
    else:
        message.save()
    publish_on_commit([message.pk])
    return message


def enqueue_on_commit(task: Any, *args: Any, **kwargs: Any) -> OutboxMessage:
    """``task.delay(*args, **kwargs)``, but through the outbox: written now, sent after commit."""
    return enqueue(task, args=args, kwargs=kwargs)


_local = threading.local()


def publish_on_commit(ids: list[int]) -> None:
    """Publish these rows right after the current transaction commits (one drain per commit)."""
    pending = getattr(_local, "pending", None)
    if pending is None:
        pending = _local.pending = []
    pending.extend(ids)
    transaction.on_commit(_drain)


def _drain() -> None:
    ids, _local.pending = list(getattr(_local, "pending", ())), []
    if ids:
        relay(ids=ids)


# --- relay ---------------------------------------------------------------------------------------


class _Breaker:
    """After a failed publish, skip publishing on commit for a while: the sweep will do it."""

    until = 0.0

    def open(self) -> None:
        self.until = time.monotonic() + settings.OUTBOX_SWEEP_SECONDS

    def is_open(self) -> bool:
        return time.monotonic() < self.until

    def close(self) -> None:
        self.until = 0.0


breaker = _Breaker()


@dataclass
class RelayResult:
    published: int = 0
    ran_inline: int = 0
    failed: int = 0  # runs given up (stalled too often)
    error: str = ""


def _eager() -> bool:
    return bool(celery_app.conf.task_always_eager)


def publish_lease(publish_count: int) -> dt.timedelta:
    """How long a published message may wait to start before it is published again.

    Doubles with each publish (a long queue is not flooded with copies), capped at the broker's
    visibility timeout, after which the broker would hand the message out again anyway.
    """
    base = settings.OUTBOX_PUBLISH_LEASE_SECONDS * 2 ** max(publish_count - 1, 0)
    cap = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    return dt.timedelta(seconds=min(base, max(cap, settings.OUTBOX_PUBLISH_LEASE_SECONDS)))


def _due(ids: list[int] | None, now: dt.datetime):
    pending = Q(status=Status.PENDING, available_at__lte=now)
    if ids is not None:
        return OutboxMessage.objects.filter(pending, pk__in=ids)
    expired = Q(status__in=[Status.PUBLISHED, Status.RUNNING], lease_until__lte=now)
    return OutboxMessage.objects.filter(pending | expired)


def relay(*, ids: list[int] | None = None, now: dt.datetime | None = None, budget: float | None = None) -> RelayResult:
    """Publish due rows (only ``ids`` if given): to the broker, or inline with no broker. Never raises."""
    result = RelayResult()
    if ids is not None and not _eager() and breaker.is_open():
        return result  # the broker just failed in this process; the sweep retries in a few seconds
    deadline = time.monotonic() + (budget if budget is not None else SWEEP_BUDGET_SECONDS)
    chunks = [ids[i : i + BATCH_SIZE] for i in range(0, len(ids), BATCH_SIZE)] if ids is not None else None
    try:
        while time.monotonic() < deadline and not result.error:
            batch_now = now or timezone.now()
            if chunks is None:
                result.failed += _fail_exhausted(batch_now)
                if _relay_batch(None, batch_now, result) < BATCH_SIZE:
                    break
            elif chunks:
                _relay_batch(chunks.pop(0), batch_now, result)
            else:
                break
    except Exception as exc:  # a database error: nothing is lost, the rows stay due for the sweep
        logger.exception("Outbox relay failed")
        result.error = result.error or repr(exc)
    return result


def _relay_batch(ids: list[int] | None, now: dt.datetime, result: RelayResult) -> int:
    inline: list[OutboxMessage] = []
    with transaction.atomic():
        rows = list(_due(ids, now).select_for_update(skip_locked=True).order_by("pk")[:BATCH_SIZE])
        if not rows:
            return 0
        if _eager():
            sent, inline = rows, rows
        else:
            sent = _send(rows, result)
        by_count: dict[int, list[int]] = defaultdict(list)
        for row in sent:
            by_count[row.publish_count + 1].append(row.pk)
        for count, pks in by_count.items():
            OutboxMessage.objects.filter(pk__in=pks).update(
                status=Status.PUBLISHED,
                publish_count=count,
                published_at=now,
                lease_until=now + publish_lease(count),
            )
        result.published += 0 if inline else len(sent)
    for row in inline:  # after the commit: the task's own transactions are real ones
        _run_inline(row)
        result.ran_inline += 1
    return len(rows)


def _send(rows: list[OutboxMessage], result: RelayResult) -> list[OutboxMessage]:
    """Send to the broker until the first failure; record that failure on its row."""
    app = celery_app
    sent: list[OutboxMessage] = []
    try:
        # A pooled connection: opening one costs more than publishing a few hundred messages, and a
        # pooled one whose broker went away and came back reconnects on its next publish.
        with app.producer_or_acquire() as producer:
            for row in rows:
                options = {"queue": queue} if (queue := queue_for(row.kind)) else {}
                app.send_task(
                    row.name,
                    args=row.args,
                    kwargs=row.kwargs,
                    headers={HEADER: row.pk},
                    producer=producer,
                    retry=False,
                    **options,
                )
                sent.append(row)
    except Exception as exc:
        failed = rows[len(sent)]
        result.error = f"{type(exc).__name__}: {exc}"
        OutboxMessage.objects.filter(pk=failed.pk).update(last_error=f"Publish failed: {result.error}"[:2000])
        breaker.open()
        logger.warning("Outbox: publishing #%s failed (%s); the sweep retries it", failed.pk, result.error)
    else:
        breaker.close()
    return sent


def _run_inline(row: OutboxMessage) -> None:
    """The embedded mode: run the task here and now, recorded like a worker's run."""
    task = celery_app.tasks.get(row.name)
    if task is None:  # written by name from a module that did not import the task: load them all
        celery_app.loader.import_default_modules()
        task = celery_app.tasks.get(row.name)
    if task is None:
        with transaction.atomic():
            _record_failure(row.pk, None, f"Unknown task {row.name}")
        return
    task.apply(args=row.args, kwargs=row.kwargs, headers={HEADER: row.pk}, throw=False)


def run_inline(ids: list[int]) -> RelayResult:
    """Run these pending rows in this process now (``manage.py deliver_webhooks --inline``).

    Each run claims its row first, so a row a worker is already running is not run twice."""
    result = RelayResult()
    for row in OutboxMessage.objects.filter(pk__in=ids, status=Status.PENDING).order_by("pk"):
        _run_inline(row)
        result.ran_inline += 1
    return result


def _fail_exhausted(now: dt.datetime) -> int:
    """Runs whose lease ran out once too often (the worker keeps dying on them) are given up."""
    return OutboxMessage.objects.filter(
        status=Status.RUNNING, lease_until__lte=now, attempts__gte=F("max_attempts")
    ).update(
        status=Status.FAILED,
        lease_until=None,
        last_error="The run stopped without finishing (worker killed or timed out) on every attempt.",
    )


def sweep(*, now: dt.datetime | None = None) -> RelayResult:
    """Beat's job: publish everything due now (see the module docstring). Never raises."""
    return relay(now=now)


# --- consume -------------------------------------------------------------------------------------


# The message this thread is running (its id, and when its lease was last extended).
_current: contextvars.ContextVar[tuple[int, dt.datetime] | None] = contextvars.ContextVar(
    "outbox_current", default=None
)


def _outbox_id(request: Any) -> int | None:
    value = getattr(request, HEADER, None) or (getattr(request, "headers", None) or {}).get(HEADER)
    return int(value) if value is not None else None


def consume(outbox_id: int, call: Callable[[], Any]) -> Any:
    """Run ``call`` as the outbox message ``outbox_id``: claim, run, mark done (or record the error)."""
    attempt = _claim(outbox_id)
    if attempt is None:
        return {"outbox": outbox_id, "skipped": "done"}
    token = _current.set((outbox_id, timezone.now()))
    try:
        result = call()
    except Exception as exc:
        with transaction.atomic():
            _record_failure(outbox_id, attempt, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        _current.reset(token)
    OutboxMessage.objects.filter(pk=outbox_id, status__in=OutboxMessage.sources(Status.DONE)).update(
        status=Status.DONE, done_at=timezone.now(), lease_until=None
    )
    return result


def _claim(outbox_id: int) -> int | None:
    """Take the row for this run (a duplicate delivery takes over); None if it needs no run."""
    now = timezone.now()
    with transaction.atomic():
        row = OutboxMessage.objects.select_for_update().filter(pk=outbox_id).first()
        if row is None or row.status not in OutboxMessage.sources(Status.RUNNING):
            return None
        if row.attempts >= row.max_attempts:
            OutboxMessage.objects.filter(pk=row.pk).update(
                status=Status.FAILED, lease_until=None, last_error=row.last_error or "Too many attempts."
            )
            return None
        attempt = row.attempts + 1
        OutboxMessage.objects.filter(pk=row.pk).update(
            status=Status.RUNNING,
            attempts=attempt,
            started_at=now,
            lease_until=now + dt.timedelta(seconds=settings.OUTBOX_RUN_LEASE_SECONDS),
        )
    return attempt


def _record_failure(outbox_id: int, attempt: int | None, error: str) -> None:
    """Retry later with backoff, or give up after ``max_attempts``. Call inside a transaction."""
    row = OutboxMessage.objects.select_for_update().filter(pk=outbox_id).first()
    if row is None or row.status == Status.DONE or (attempt is not None and row.attempts != attempt):
        return  # done meanwhile, or a newer run has taken over: that one reports
    now = timezone.now()
    if row.attempts >= row.max_attempts or attempt is None:
        update = {"status": Status.FAILED}
    else:
        update = {"status": Status.PENDING, "available_at": now + policy_for(row.kind).delay(row.attempts)}
    OutboxMessage.objects.filter(pk=row.pk).update(lease_until=None, last_error=error[:2000], **update)


def current_message() -> OutboxMessage | None:
    """The outbox row this thread is running (its attempts so far, its max_attempts), or None."""
    current = _current.get()
    return OutboxMessage.objects.filter(pk=current[0]).first() if current else None


def heartbeat() -> bool:
    """Extend the running message's lease (call it as a long task progresses). Cheap to call often:
    it writes at most once per sixth of a lease. False outside a run, or when the run was given up."""
    current = _current.get()
    if current is None:
        return False
    outbox_id, last = current
    lease = dt.timedelta(seconds=settings.OUTBOX_RUN_LEASE_SECONDS)
    now = timezone.now()
    if now - last < lease / 6:
        return True
    _current.set((outbox_id, now))
    return bool(OutboxMessage.objects.filter(pk=outbox_id, status=Status.RUNNING).update(lease_until=now + lease))


class OutboxTask(Task):
    """The project's Celery task class: messages from the outbox are claimed, run and marked done.

    A task called without the outbox header (beat, ``celery call``, a test) runs as a plain task.
    Tasks keep ``acks_late`` and ``reject_on_worker_lost`` from the settings, so a child process that
    dies mid-task is redelivered at once, and the outbox row keeps the count of attempts.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        outbox_id = _outbox_id(self.request)
        if outbox_id is None:
            return super().__call__(*args, **kwargs)
        return consume(outbox_id, lambda: Task.__call__(self, *args, **kwargs))


# --- housekeeping ------------------------------------------------------------------------------


def purge(*, now: dt.datetime | None = None) -> int:
    """Delete done rows after OUTBOX_RETENTION_DAYS and failed ones after OUTBOX_FAILED_RETENTION_DAYS.

    Deletes by primary key in batches with plain SQL: no per-row signals on a big table.
    """
    now = now or timezone.now()
    old = Q(status=Status.DONE, done_at__lt=now - dt.timedelta(days=settings.OUTBOX_RETENTION_DAYS)) | Q(
        status=Status.FAILED, created_at__lt=now - dt.timedelta(days=settings.OUTBOX_FAILED_RETENTION_DAYS)
    )
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    deleted = 0
    while True:
        ids = list(OutboxMessage.objects.filter(old).order_by().values_list("pk", flat=True)[:5000])
        if not ids:
            return deleted
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)
            deleted += cur.rowcount
