"""Benchmark: bulk code generation into PostgreSQL.

Generates N codes (default 1,000,000) for one campaign through the real service
(promotions.services.generate_code_batch: random codes COPied straight into the uniquely indexed
codes table chunk by chunk with progress; a chunk that collides goes through a temp table and
INSERT ... ON CONFLICT DO NOTHING instead), and
compares it with the raw limit in the same run: a plain COPY of N ready-made codes into an
equivalent table (LIKE promotions_code INCLUDING ALL: same
indexes and constraints). Prints seconds, codes/s, the ratio and peak memory.

    python bench/codes.py --codes 1000000
Target: at least 0.5 of the COPY rate, under 500 MB peak.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")


def admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--codes", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.codes
    db = f"loyalty_bench_codes_{os.getpid()}"
    admin_sql(f"CREATE DATABASE {db}")
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{db}",
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "CODE_BATCH_MAX_COUNT": str(max(n, 5_000_000)),
    }
    os.environ.update(env)
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        from django.contrib.auth.models import User
        from django.db import connection

        from config.celery import app
        from promotions import codegen, services
        from promotions.models import Code

        app.conf.task_always_eager = False  # the bench calls the generation itself
        boss = User.objects.create_superuser("bench", "b@example.com", "x")
        campaign = services.create_campaign(actor=boss, name="Bench", kind="fixed_discount", value=5)
        pattern = codegen.Pattern.build(length=12)

        # raw limit: COPY ready-made codes into an equivalent uniquely indexed table
        ready = codegen.generate(pattern, n)
        rows = [(c, codegen.normalize(c)) for c in ready]
        with connection.cursor() as cur:
            # the same columns, defaults, CHECKs and indexes as the real codes table
            cur.execute("CREATE TABLE raw_codes (LIKE promotions_code INCLUDING ALL)")
            t0 = time.perf_counter()
            with cur.cursor.copy(
                "COPY raw_codes (campaign_id, code, normalized, status, uses, max_uses,"
                " created_at, updated_at) FROM STDIN"
            ) as copy:
                for code, normalized in rows:
                    copy.write_row((campaign.pk, code, normalized, "active", 0, 1, "now", "now"))
            connection.commit() if not connection.get_autocommit() else None
            raw_seconds = time.perf_counter() - t0
        del ready, rows

        from django.db import transaction

        with transaction.atomic():
            batch = services.create_code_batch(campaign=campaign, actor=boss, count=n, length=12)
        before = peak_mb()
        t0 = time.perf_counter()
        services.generate_code_batch(batch_id=batch.pk)
        seconds = time.perf_counter() - t0
        generated = Code.objects.filter(batch=batch).count()
        assert generated == n, generated
        print(f"codes generated: {n}")
        print(f"  raw COPY of ready-made codes : {raw_seconds:7.1f} s  {n / raw_seconds:10.0f} codes/s")
        print(f"  generate_code_batch (service): {seconds:7.1f} s  {n / seconds:10.0f} codes/s")
        print(f"  ratio to COPY: {raw_seconds / seconds:.2f}  (target >= 0.5)")
        print(
            f"  peak memory of this process: {peak_mb():.0f} MB (before generation {before:.0f} MB;"
            " the ready-made list for the COPY baseline dominates)"
        )
    finally:
        from django.db import connections

        connections.close_all()
        admin_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    main()
