"""Retro row: approved retro claims processed by one real Celery worker (Redis + PostgreSQL) against
the same claims processed in-process.

Claims/s for
  raw    - the PostgreSQL limit for the same write shape: one transaction per claim that inserts a
           ledger row and updates a balance row and the claim row, with plain SQL;
  inproc - retro.services.process_retro_claim called in a loop in this process (no Celery);
  celery - the same number of claims sent as tasks to one ``celery worker`` process (prefork, -c 2);
and the ratio celery / inproc (target >= 0.5). One fresh database, dropped afterwards; the broker is
BENCH_REDIS.

    python -m bench.retro [--quick] [--claims 1500] [--concurrency 2]
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal

from bench import common
from bench.common import Row

TARGET = 0.5


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0], claims=0, concurrency=0)
    n = common.size(args, "claims", 1500, 30)
    concurrency = args.concurrency or 2
    with common.fresh_database("retro") as db:
        from celery import Celery
        from django.db import connection

        from config.celery import app
        from retro.models import RetroClaim
        from retro.services import process_retro_claim

        app.conf.task_always_eager = True  # setup and in-process: nothing queued by this process
        batches = {name: make_claims(name, n) for name in ("raw", "inproc", "celery")}
        common.analyze()

        # raw: the database limit for one small transaction per claim
        common.log(f"{n} claims per mode: raw SQL")
        t0 = time.perf_counter()
        with connection.cursor() as cur:
            for claim_id, member_id, metric_id in batches["raw"]:
                cur.execute("BEGIN")
                cur.execute(
                    "INSERT INTO loyalty_ledgerentry (member_id, metric_id, kind, amount, created_at, effective_at,"
                    " source_type, source_id, reason, breakdown) VALUES (%s, %s, 'retro', 45, now(), now(),"
                    " 'bench', %s, '', '{}')",
                    [member_id, metric_id, str(claim_id)],
                )
                cur.execute(
                    "UPDATE loyalty_pointbalance SET balance = balance + 45"
                    " WHERE member_id = %s AND metric_id = %s",
                    [member_id, metric_id],
                )
                cur.execute("UPDATE retro_retroclaim SET status = 'processed' WHERE id = %s", [claim_id])
                cur.execute("COMMIT")
        raw = n / (time.perf_counter() - t0)

        common.log("in-process")
        t0 = time.perf_counter()
        for claim_id, _, _ in batches["inproc"]:
            process_retro_claim(claim_id=claim_id)
        inproc = n / (time.perf_counter() - t0)

        common.log(f"one Celery worker (prefork, -c {concurrency})")
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        with common.celery_worker(db, queue=queue, concurrency=concurrency):
            sender = Celery(broker=common.REDIS)
            ids = [c for c, _, _ in batches["celery"]]
            time.sleep(3)  # let the worker boot before the clock starts
            t0 = time.perf_counter()
            for claim_id in ids:
                sender.send_task("retro.tasks.process_retro_claim", args=[claim_id], queue=queue)
            pending = RetroClaim.objects.filter(pk__in=ids).exclude(status="processed")
            deadline = time.monotonic() + max(600, n)
            while pending.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker did not process every claim in time")
                time.sleep(0.25)
            celery = n / (time.perf_counter() - t0)
        processed = RetroClaim.objects.filter(status="processed").count()
        assert processed == 3 * n, processed

    ratio = celery / inproc
    row = Row(
        "retro",
        f"retro claims through one Celery worker (-c {concurrency})",
        f"{celery:.0f} claims/s ({n} claims)",
        limit=f"in-process {inproc:.0f} claims/s (raw SQL {raw:.0f}/s)",
        ratio=ratio,
        target=f">= {TARGET}",
        met=ratio >= TARGET,
        details={
            "claims": n,
            "concurrency": concurrency,
            "celery_per_s": celery,
            "inproc_per_s": inproc,
            "raw_sql_per_s": raw,
        },
    )
    common.emit(args, [row])


def make_claims(label: str, n: int) -> list[tuple[int, int, int]]:
    """n approved claims, each for its own member and bill (setup, not measured)."""
    from django.contrib.auth.models import User
    from django.db import transaction

    from loyalty import services
    from loyalty.models import (
        Member,
        Metric,
        PointBalance,
        ProgramSettings,
        RuleSet,
        Tier,
        TierMembership,
        Transaction,
    )
    from retro.models import RetroClaim

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    metric, _ = Metric.objects.get_or_create(code="points", defaults={"name": "Points"})
    tier, _ = Tier.objects.get_or_create(code="BRONZE", defaults={"name": "Bronze", "rank": 1})
    user, _ = User.objects.get_or_create(username="bench", defaults={"is_superuser": True})
    ProgramSettings.objects.update_or_create(pk=1, defaults={"retro_enabled": True})
    if not RuleSet.objects.exists():
        rules = services.create_rule_set(
            name="Bench",
            valid_from=start,
            actor=user,
            rules=[{"name": "Visit", "metric": "points", "action": "fixed", "points": 45}],
        )
        services.publish_rule_set(rule_set=rules, actor=user)
    with transaction.atomic():
        members = Member.objects.bulk_create(
            [Member(external_id=f"{label}-{i}", tier=tier, enrolled_at=start) for i in range(n)], batch_size=2000
        )
        TierMembership.objects.bulk_create(
            [TierMembership(member=m, tier=tier, valid_from=start) for m in members], batch_size=2000
        )
        PointBalance.objects.bulk_create([PointBalance(member=m, metric=metric) for m in members], batch_size=2000)
        bills = Transaction.objects.bulk_create(
            [
                Transaction(
                    external_id=f"{label}-bill-{i}",
                    occurred_at=start + dt.timedelta(days=1),
                    amount=Decimal("10.00"),
                    currency="EUR",
                )
                for i in range(n)
            ],
            batch_size=2000,
        )
        claims = RetroClaim.objects.bulk_create(
            [
                RetroClaim(
                    transaction=b, member=m, requested_by=user, approved_by=user, status="approved", approved_at=start
                )
                for b, m in zip(bills, members, strict=True)
            ],
            batch_size=2000,
        )
    return [(c.pk, c.member_id, metric.pk) for c in claims]


if __name__ == "__main__":
    main()
