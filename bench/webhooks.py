"""Webhooks row: events delivered by a real Celery worker (Redis + PostgreSQL) to a local HTTP
receiver, against a bare loop of HTTP POSTs to the same receiver in the same run.

Events/s for
  bare     - the receiver's limit for this client shape: one new connection and one POST of a
             webhook-sized JSON body per request, in a plain loop (no database, no signing);
  delivered- ``n`` events emitted in one committed transaction for one subscription, delivered by
             one ``celery worker`` (prefork, -c 2) on the webhook queue: from the commit (which
             publishes them) until every delivery is ``delivered``;
  inproc   - the same deliveries run inline in this process right after the commit (no broker);
and the ratio delivered / bare; the target is delivered >= 0.5 x inproc (the worker adds the queue,
not a slower path). One fresh database, dropped afterwards; the broker is BENCH_REDIS.

    python -m bench.webhooks [--quick] [--events 1000] [--concurrency 2]
"""

from __future__ import annotations

import http.client
import os
import time
import uuid

from bench import common
from bench.common import Row

TARGET = 0.5  # of the in-process rate, as the retro row (the bare loop has no database at all)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0], events=0, concurrency=0)
    n = common.size(args, "events", 1000, 40)
    concurrency = args.concurrency or 2
    queue = f"bench-webhooks-{uuid.uuid4().hex[:6]}"
    # Read by the settings when Django starts: the worker's queue, and the receiver on loopback.
    os.environ.update({"WEBHOOK_QUEUE": queue, "CELERY_QUEUE": queue, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true"})
    with common.fresh_database("webhooks") as db:
        from django.contrib.auth.models import User
        from django.db import transaction

        from config.celery import app
        from loyalty import services
        from loyalty.events import emit, webhooks
        from loyalty.kernel import SYSTEM
        from loyalty.models import Event, WebhookDelivery
        from tests.webhook_receiver import Receiver

        receiver = Receiver()
        boss = User.objects.create_superuser("bench", "bench@example.com", "x")
        app.conf.task_always_eager = True
        members = [services.enroll_member(external_id=f"B-{i}", actor=SYSTEM) for i in range(min(n, 50))]
        sample = webhooks.body_of(Event.objects.first())

        common.log(f"bare loop: {n} POSTs of {len(sample)} bytes")
        t0 = time.perf_counter()
        for _ in range(n):
            conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
            conn.request("POST", "/hook", body=sample, headers={"Content-Type": "application/json"})
            conn.getresponse().read()
            conn.close()
        bare = n / (time.perf_counter() - t0)
        receiver.received.clear()

        common.log(f"in-process: {n} events delivered inline after their commit (no broker)")
        inline_sub, _ = webhooks.create_subscription(url=receiver.url, events=["member.tier_changed"], actor=boss)
        with transaction.atomic():
            for i in range(n):
                emit("member.tier_changed", members[i % len(members)])
            t0 = time.perf_counter()  # the commit runs every delivery here, one after the other
        inproc = n / (time.perf_counter() - t0)
        assert not WebhookDelivery.objects.exclude(status="delivered").exists()
        webhooks.update_subscription(subscription=inline_sub, actor=boss, active=False)
        WebhookDelivery.objects.all().delete()
        receiver.received.clear()

        webhooks.create_subscription(url=receiver.url, events=["member.tier_changed"], actor=boss)
        common.log(f"one Celery worker (prefork, -c {concurrency}) delivering {n} events")
        with common.celery_worker(db, queue=queue, concurrency=concurrency):
            app.conf.task_always_eager = False
            with transaction.atomic():  # a warm-up delivery: the clock starts once the worker is up
                emit("member.tier_changed", members[0])
            wait_until_delivered(WebhookDelivery, 120)
            WebhookDelivery.objects.all().delete()
            receiver.received.clear()
            with transaction.atomic():
                for i in range(n):
                    emit("member.tier_changed", members[i % len(members)])
                t0 = time.perf_counter()  # the commit publishes every delivery to the worker's queue
            wait_until_delivered(WebhookDelivery, max(600, n))
            delivered = n / (time.perf_counter() - t0)
        retried = WebhookDelivery.objects.filter(attempts__gt=1).count()
        common.log(f"{retried} deliveries needed more than one attempt")
        assert len({r.headers["Loyalty-Event-Id"] for r in receiver.received}) == n
        receiver.stop()

    ratio = delivered / bare
    row = Row(
        "webhooks",
        f"webhook deliveries through one Celery worker (-c {concurrency})",
        f"{delivered:.0f} events/s ({n} events)",
        limit=f"bare POST loop {bare:.0f}/s (in-process deliveries {inproc:.0f}/s)",
        ratio=ratio,
        target=f"worker >= {TARGET} x in-process",
        met=delivered >= TARGET * inproc,
        details={
            "events": n,
            "concurrency": concurrency,
            "delivered_per_s": delivered,
            "inproc_per_s": inproc,
            "bare_posts_per_s": bare,
            "ratio_to_bare": ratio,
            "ratio_to_inproc": delivered / inproc,
        },
    )
    common.emit(args, [row])


def wait_until_delivered(model, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while model.objects.exclude(status="delivered").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not deliver every event in time")
        time.sleep(0.05)


if __name__ == "__main__":
    main()
