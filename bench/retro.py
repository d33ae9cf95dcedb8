"""Benchmark: processing approved retro claims on one real Celery worker (Redis + PostgreSQL).

Prints claims/s for
  raw   - the PostgreSQL limit for the same write shape: one transaction per claim that inserts a
          ledger row and updates a balance row and the claim row, with plain SQL;
  inproc - services.process_retro_claim called in a loop in this process (no Celery);
  celery - the same number of claims sent as tasks to one `celery worker` process (prefork, -c 2);
and the ratios celery/inproc (target >= 0.5) and each against raw. Everything runs in one fresh
database created for this run and dropped afterwards.

    python bench/retro.py --claims 10000
Needs PostgreSQL at $BENCH_PG (default postgres://postgres@127.0.0.1:5432) and Redis at $BENCH_REDIS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/13")


def psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    n = args.claims
    db = f"loyalty_bench_{os.getpid()}"
    psql(f"CREATE DATABASE {db}")
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{db}",
        "CELERY_BROKER_URL": REDIS,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
    }
    os.environ.update(env)
    worker = None
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        from celery import Celery
        from django.db import connection

        from config.celery import app
        from retro.models import RetroClaim
        from retro.services import process_retro_claim

        app.conf.task_always_eager = True
        batches = {name: make_claims(name, n) for name in ("raw", "inproc", "celery")}

        # raw: the database limit for one small transaction per claim
        raw_ids = batches["raw"]
        t0 = time.perf_counter()
        with connection.cursor() as cur:
            for claim_id, member_id, metric_id in raw_ids:
                cur.execute("BEGIN")
                cur.execute(
                    "INSERT INTO loyalty_ledgerentry (member_id, metric_id, kind, amount, created_at, effective_at,"
                    " source_type, source_id, reason, breakdown) VALUES (%s, %s, 'retro', 45, now(), now(),"
                    " 'bench', %s, '', '{}')",
                    [member_id, metric_id, str(claim_id)],
                )
                cur.execute(
                    "UPDATE loyalty_pointbalance SET balance = balance + 45 WHERE member_id = %s AND metric_id = %s",
                    [member_id, metric_id],
                )
                cur.execute("UPDATE retro_retroclaim SET status = 'processed' WHERE id = %s", [claim_id])
                cur.execute("COMMIT")
        raw = n / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        for claim_id, _, _ in batches["inproc"]:
            process_retro_claim(claim_id=claim_id)
        inproc = n / (time.perf_counter() - t0)

        queue = f"bench-{uuid.uuid4().hex[:6]}"
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool=prefork",
                f"--concurrency={args.concurrency}",
                "-Q",
                queue,
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        sender = Celery(broker=REDIS)
        ids = [c for c, _, _ in batches["celery"]]
        time.sleep(3)  # let the worker boot before the clock starts
        t0 = time.perf_counter()
        for claim_id in ids:
            sender.send_task("retro.tasks.process_retro_claim", args=[claim_id], queue=queue)
        pending = RetroClaim.objects.filter(pk__in=ids).exclude(status="processed")
        while pending.exists():
            time.sleep(0.25)
        celery = n / (time.perf_counter() - t0)
        assert RetroClaim.objects.filter(status="processed").count() == 3 * n

        print(f"retro claims processed: {n} per mode, worker concurrency {args.concurrency}, cpus {os.cpu_count()}")
        print(f"  raw SQL limit : {raw:8.0f} claims/s")
        print(f"  in-process    : {inproc:8.0f} claims/s  ({inproc / raw:.2f} of raw)")
        print(f"  celery worker : {celery:8.0f} claims/s  ({celery / raw:.2f} of raw)")
        print(f"  celery / in-process ratio: {celery / inproc:.2f}  (target >= 0.5)")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        from django.db import connections

        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


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
